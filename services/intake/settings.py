"""Intake settings (prefix ``INTAKE_``)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Everything an operator tunes for intake."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_")
    service_name: ClassVar[str] = "intake"
