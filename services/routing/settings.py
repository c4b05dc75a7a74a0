"""Routing settings (prefix ``ROUTING_``)."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Everything an operator tunes for routing."""

    model_config = SettingsConfigDict(env_prefix="ROUTING_")
    service_name: ClassVar[str] = "routing"

    policy_path: Path | None = Field(
        default=None, description="Routing policy YAML; empty means the packaged services/routing/policy.yaml."
    )
    timer_busy_retry_seconds: float = Field(
        default=0.25, gt=0, le=60, description="When a case is being changed as its timer fires, try again after this."
    )
