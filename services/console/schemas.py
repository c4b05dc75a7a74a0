"""The console's API bodies."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.events.vocabulary import Role


class SignIn(BaseModel):
    """Sign in with a username and password."""

    username: str = Field(min_length=1, max_length=40, examples=["lead"])
    password: str = Field(min_length=1, max_length=200, examples=["redress-dev"])


class SessionInfo(BaseModel):
    """The signed-in operator. ``token`` is the operator token (also usable with the CLI and the APIs)."""

    subject: str
    role: Role
    display_name: str | None = None
    expires_at: datetime
    token: str | None = Field(default=None, description="Returned at sign-in only.")


class ServiceState(BaseModel):
    """Whether one part of the deployment is ready."""

    name: str
    url: str | None = None
    ready: bool
    detail: str | None = None


class Overview(BaseModel):
    """Readiness of every service and of the live stream."""

    services: list[ServiceState]
    stream: dict[str, Any]
