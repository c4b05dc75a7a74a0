"""Loyalty settings (prefix ``LOYALTY_``)."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.loyalty.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Everything an operator tunes for loyalty."""

    model_config = SettingsConfigDict(env_prefix="LOYALTY_")
    service_name: ClassVar[str] = "loyalty"

    policy_path: Path = Field(default=DEFAULT_POLICY_PATH, description="The loyalty policy YAML file.")
    sweep_interval_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="How often expiry, the yearly roll-over and due benefits are swept."
    )
    sweep_batch: int = Field(default=200, ge=1, le=10_000, description="Customers handled per sweep step.")
    ledger_page_max: int = Field(default=200, ge=1, le=1000, description="Largest ledger page a client may ask for.")
    import_max_items: int = Field(default=1000, ge=1, le=100_000, description="Orders plus refunds per import call.")

    @field_validator("policy_path")
    @classmethod
    def _policy_loads(cls, value: Path) -> Path:
        """Refuse to start on a policy file that does not validate, naming the bad field."""
        try:
            load_policy(value)
        except PolicyError as exc:
            raise ValueError(str(exc)) from exc
        return value
