"""Loyalty settings (prefix ``LOYALTY_``)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Everything an operator tunes for loyalty."""

    model_config = SettingsConfigDict(env_prefix="LOYALTY_")
    service_name: ClassVar[str] = "loyalty"
