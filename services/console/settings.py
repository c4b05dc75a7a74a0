"""Console settings (prefix ``CONSOLE_``).

Operators who may sign in come from ``CONSOLE_OPERATORS`` (a JSON list) or ``CONSOLE_OPERATORS_FILE``
(a YAML or JSON file with the same list). In development, when neither is set, three sign-ins exist
for ``make run`` (``agent``, ``lead``, ``manager``, password ``redress-dev``); production refuses to
start without real operators.
"""

from functools import cached_property
from pathlib import Path
from typing import ClassVar

import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.console.passwords import BadHash, hash_password, parse_hash
from shared.events.vocabulary import Role
from shared.settings import ServiceSettings

DEV_PASSWORD = "redress-dev"
DEV_OPERATORS = (("agent", Role.AGENT, "Dev Agent"), ("lead", Role.SUPERVISOR, "Dev Team Lead"),
                 ("manager", Role.MANAGER, "Dev Manager"))


class OperatorAccount(BaseModel):
    """One operator who may sign in to the console."""

    username: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,39}$", description="Lower-case sign-in name.")
    role: Role
    password_hash: str = Field(description="scrypt hash string from python -m services.console.passwords")
    display_name: str | None = Field(default=None, max_length=80)

    @field_validator("password_hash")
    @classmethod
    def _readable_hash(cls, value: str) -> str:
        try:
            parse_hash(value)
        except BadHash as exc:
            raise ValueError(str(exc)) from None
        return value


_ACCOUNTS = TypeAdapter(list[OperatorAccount])


class Settings(ServiceSettings):
    """Everything an operator tunes for the console."""

    model_config = SettingsConfigDict(env_prefix="CONSOLE_")
    service_name: ClassVar[str] = "console"

    intake_url: str = Field(default="http://127.0.0.1:8001", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    routing_url: str = Field(default="http://127.0.0.1:8002", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    recovery_url: str = Field(default="http://127.0.0.1:8003", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    loyalty_url: str = Field(default="http://127.0.0.1:8004", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    upstream_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    satisfaction_target: float = Field(default=4.5, ge=1, le=5, description="Satisfaction score KPI (1-5).")
    board_max_cases: int = Field(default=1000, ge=50, le=20_000, description="Most open cases the board loads.")

    operators: list[OperatorAccount] = Field(default_factory=list, description="Who may sign in (JSON list).")
    operators_file: Path | None = Field(default=None, description="YAML/JSON file with the operators list.")
    session_hours: float = Field(default=8.0, gt=0, le=24, description="Lifetime of a sign-in and its token.")
    cookie_secure: bool | None = Field(default=None, description="Secure cookie; default: on in production.")
    signin_max_failures: int = Field(default=5, ge=1, le=100, description="Failed sign-ins before a lockout.")
    signin_lockout_seconds: float = Field(default=300.0, ge=1, le=86_400)

    stream_buffer_events: int = Field(default=2000, ge=10, le=100_000, description="Recent events kept for replay.")
    stream_client_queue: int = Field(default=500, ge=10, le=10_000, description="Events queued per slow client.")
    stream_max_clients: int = Field(default=200, ge=1, le=10_000)
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    stream_fetch_max_wait_ms: int = Field(default=10, ge=1, le=5_000)
    story_max_messages: int = Field(default=500_000, ge=1, le=100_000_000,
                                    description="Most messages one complaint-story scan reads.")
    story_timeout_seconds: float = Field(default=20.0, gt=0, le=300)

    @model_validator(mode="after")
    def _production_needs_operators(self) -> "Settings":
        if self.environment == "production" and not self.operators and not self.operators_file:
            raise ValueError("CONSOLE_OPERATORS: set the operators who may sign in; development sign-ins are "
                             "refused in production")
        if self.operators_file is not None:
            self.operators_from_file()
        names = [a.username for a in self.operators]
        if len(names) != len(set(names)):
            raise ValueError("CONSOLE_OPERATORS: usernames must be unique")
        return self

    def operators_from_file(self) -> list[OperatorAccount]:
        """The operators listed in ``operators_file``; raises ValueError naming the bad entry."""
        if self.operators_file is None:
            return []
        try:
            raw = yaml.safe_load(self.operators_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"CONSOLE_OPERATORS_FILE: cannot read {self.operators_file}: {exc}") from None
        try:
            return _ACCOUNTS.validate_python(raw.get("operators", raw) if isinstance(raw, dict) else raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise ValueError(f"CONSOLE_OPERATORS_FILE: operators.{where}: {first['msg']}") from None

    @cached_property
    def accounts(self) -> dict[str, OperatorAccount]:
        """Every operator who may sign in, by username (development defaults when none is configured)."""
        accounts = [*self.operators, *self.operators_from_file()]
        if not accounts and self.environment == "development":
            accounts = [OperatorAccount(username=u, role=r, display_name=d, password_hash=hash_password(DEV_PASSWORD))
                        for u, r, d in DEV_OPERATORS]
        return {a.username: a for a in accounts}

    @property
    def secure_cookies(self) -> bool:
        """Whether the session cookie is marked Secure (HTTPS only)."""
        return self.environment == "production" if self.cookie_secure is None else self.cookie_secure

    def service_urls(self) -> dict[str, str]:
        """Base URL of each service the console talks to."""
        return {"intake": self.intake_url.rstrip("/"), "routing": self.routing_url.rstrip("/"),
                "recovery": self.recovery_url.rstrip("/"), "loyalty": self.loyalty_url.rstrip("/")}
