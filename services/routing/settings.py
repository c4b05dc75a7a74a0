"""Routing settings (prefix ``ROUTING_``)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Everything an operator tunes for routing."""

    model_config = SettingsConfigDict(env_prefix="ROUTING_")
    service_name: ClassVar[str] = "routing"
