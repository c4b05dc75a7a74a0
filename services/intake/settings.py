"""Intake settings (prefix ``INTAKE_``)."""

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.events.vocabulary import Channel
from shared.settings import ServiceSettings


class ChannelKey(BaseModel):
    """One API key of a channel integration: the id it sends and the secret it signs with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    secret: SecretStr = Field(min_length=16)


def _dev_keys() -> dict[Channel, list[ChannelKey]]:
    # Known to `make run`, the CLI's `submit` and the tests; refused in production.
    return {
        c: [ChannelKey(key_id=f"{c.value}-dev", secret=SecretStr(f"dev-{c.value}-secret-change-me"))] for c in Channel
    }


DEV_CHANNEL_KEYS = _dev_keys()


class Settings(ServiceSettings):
    """Everything an operator tunes for intake."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_")
    service_name: ClassVar[str] = "intake"

    channel_keys: dict[Channel, list[ChannelKey]] = Field(
        default_factory=_dev_keys,
        description='JSON {"<channel>": [{"key_id": ..., "secret": ...}, ...]}; two keys for a channel = rotation.',
    )
    signature_window_seconds: int = Field(
        default=300, ge=10, le=3600, description="How old (or how far ahead) a signed timestamp may be."
    )
    # The middleware's limit is the largest body intake takes at all (a bulk import); one complaint has its own.
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="Largest request body (bulk import).")
    max_complaint_bytes: int = Field(default=256 * 1024, ge=1024, description="Largest body of one complaint.")
    bulk_max_lines: int = Field(default=5000, ge=1, le=100_000)
    channel_rate_per_second: float = Field(default=200.0, gt=0, description="Requests per second per channel key.")
    channel_rate_burst: int = Field(default=400, ge=1)
    policy_path: Path | None = Field(
        default=None, description="Intake policy YAML; empty means the packaged services/intake/policy.yaml."
    )
    classification_path: Path | None = Field(
        default=None, description="Classification rules YAML; empty means services/intake/classification.yaml."
    )

    @model_validator(mode="after")
    def _production_needs_real_keys(self) -> "Settings":
        if self.environment != "production":
            return self
        dev_secrets = {key.secret.get_secret_value() for keys in DEV_CHANNEL_KEYS.values() for key in keys}
        for channel, keys in self.channel_keys.items():
            if any(key.secret.get_secret_value() in dev_secrets for key in keys):
                raise ValueError(f"channel_keys: the development key of {channel.value} is refused in production")
        if not self.channel_keys:
            raise ValueError("channel_keys: set INTAKE_CHANNEL_KEYS; production has no built-in keys")
        return self

    def keys_for(self, channel: Channel) -> list[ChannelKey]:
        """The valid keys of a channel (two during a rotation)."""
        return self.channel_keys.get(channel, [])
