"""Recovery settings (prefix ``RECOVERY_``)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Everything an operator tunes for recovery."""

    model_config = SettingsConfigDict(env_prefix="RECOVERY_")
    service_name: ClassVar[str] = "recovery"
