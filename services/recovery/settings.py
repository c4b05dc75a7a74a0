"""Recovery settings (prefix ``RECOVERY_``)."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.recovery.policy import DEFAULT_POLICY_PATH
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Everything an operator tunes for recovery; business figures live in the policy file."""

    model_config = SettingsConfigDict(env_prefix="RECOVERY_")
    service_name: ClassVar[str] = "recovery"

    policy_path: Path = Field(default=DEFAULT_POLICY_PATH, description="The recovery policy YAML file.")
    incident_batch_size: int = Field(
        default=2000, ge=1, le=20_000, description="Customers compensated per transaction."
    )
    incident_rate_per_second: float = Field(
        default=5000, gt=0, le=1_000_000, description="Fan-out throttle, so incidents never starve case work."
    )
    incident_collect_chunk: int = Field(
        default=10_000, ge=100, le=100_000, description="Segment customers queued per transaction."
    )
    incident_poll_seconds: float = Field(default=1.0, gt=0, le=60, description="Idle wait of the fan-out worker.")
    incident_max_consumer_lag: int = Field(
        default=10_000, ge=0, le=10_000_000,
        description="The fan-out pauses while a group in incident_lag_groups is this many compensation events "
                    "behind (0: never pauses). The embedded broker keeps only about 25,000 such events.",
    )
    incident_lag_groups: str = Field(
        default="redress-loyalty", description="Comma-separated consumer groups the fan-out waits for.",
    )
    incident_lag_check_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often the fan-out reads those groups' lag.",
    )
    incident_sweep_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="How often the fan-out looks again from the start of its queue for customers left behind.",
    )

    @property
    def lag_groups(self) -> list[str]:
        """The consumer groups the incident fan-out waits for."""
        return [group.strip() for group in self.incident_lag_groups.split(",") if group.strip()]
