"""Settings every service shares, read from the environment and validated at start.

Each service subclasses ``ServiceSettings`` with its own prefix (``INTAKE_`` ...). The settings
that all services share in one deployment (database, broker, operator secret, log level,
environment) are also read without the prefix, so one ``DATABASE_URL`` can serve the stack;
a prefixed variable wins over an unprefixed one.
"""

from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

DEV_OPERATOR_SECRET = "dev-operator-secret-change-me-0123456789"
COMMON_FIELDS = frozenset(
    {"database_url", "kafka_bootstrap_servers", "operator_token_secret", "log_level", "environment", "data_dir"}
)


class _UnprefixedCommonSource(EnvSettingsSource):
    """Reads only the common fields, by their bare names (``DATABASE_URL``)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name not in COMMON_FIELDS:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class ServiceSettings(BaseSettings):
    """Settings shared by every service; subclasses set ``service_name`` and an env prefix."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)
    service_name: ClassVar[str] = "service"

    environment: Literal["development", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    data_dir: Path = Path("data")
    database_url: str = Field(default="", description="SQLAlchemy async URL; empty means SQLite under data_dir.")
    db_pool_size: int = Field(default=5, ge=1, le=200)
    db_analyze_interval_seconds: float = Field(
        default=5.0, ge=0, le=3_600,
        description="How often the service analyzes its tables that grew (0: leave it to autovacuum).",
    )
    db_analyze_min_rows: int = Field(default=1_000, ge=1, description="Changes a table needs before it is analyzed.")
    db_analyze_growth: float = Field(
        default=0.5, gt=0, le=100,
        description="Changes since the last analysis, as a share of the rows then, that call for one.",
    )
    kafka_bootstrap_servers: str = Field(default="", description="host:port list; empty: read data_dir/broker.txt")
    kafka_fetch_max_wait_ms: int = Field(default=100, ge=1, le=10_000)
    kafka_linger_ms: int = Field(
        default=0, ge=0, le=1_000,
        # The relay hands the producer a whole batch and waits for it; a linger only delays every hop.
        description="How long the producer holds a batch for more messages before sending it.",
    )
    kafka_max_batch: int = Field(default=500, ge=1, le=10_000)
    kafka_partition_concurrency: int = Field(
        default=2, ge=1, le=32,
        description="Partitions of one fetch handled in concurrent transactions (PostgreSQL; each partition in order).",
    )
    kafka_assignor_delay_ms: int = Field(default=0, ge=0, le=5_000, description="Test aid for the embedded broker.")
    consumer_max_retries: int = Field(default=3, ge=0, le=20)
    consumer_retry_backoff_ms: int = Field(default=100, ge=1, le=60_000)
    outbox_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    outbox_batch: int = Field(default=500, ge=1, le=10_000)
    timer_poll_seconds: float = Field(default=0.2, gt=0, le=60)
    timer_batch: int = Field(default=200, ge=1, le=10_000)
    operator_token_secret: str = Field(default=DEV_OPERATOR_SECRET, min_length=32)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=300)
    shutdown_unready_seconds: float = Field(
        default=0.0, ge=0, le=60, description="After SIGTERM, report not-ready this long before stopping."
    )
    operator_rate_per_second: float = Field(default=20.0, gt=0, description="Per-operator request rate limit.")
    operator_rate_burst: int = Field(default=60, ge=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        common = _UnprefixedCommonSource(settings_cls, env_prefix="", case_sensitive=False)
        return init_settings, env_settings, common, dotenv_settings, file_secret_settings

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> "ServiceSettings":
        if self.environment == "production" and self.operator_token_secret == DEV_OPERATOR_SECRET:
            raise ValueError("operator_token_secret: set OPERATOR_TOKEN_SECRET; the built-in dev secret is refused")
        return self

    @model_validator(mode="after")
    def _concurrent_partitions_need_connections(self) -> "ServiceSettings":
        # Each concurrent group holds a pooled connection; the API, relay and timers need theirs too.
        if self.kafka_partition_concurrency > self.db_pool_size:
            raise ValueError(
                f"kafka_partition_concurrency ({self.kafka_partition_concurrency}) must not exceed "
                f"db_pool_size ({self.db_pool_size})"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to this service's SQLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / (self.service_name + '.db')}"

    @property
    def db_schema(self) -> str | None:
        """The PostgreSQL schema this service owns (SQLite uses one file per service instead)."""
        return self.service_name if self.resolved_database_url.startswith("postgresql") else None

    @property
    def bootstrap_servers(self) -> str:
        """Broker address: the setting, else the embedded broker's address file."""
        if self.kafka_bootstrap_servers:
            return self.kafka_bootstrap_servers
        path = self.data_dir / "broker.txt"
        if path.exists():
            return path.read_text().strip()
        raise RuntimeError(f"KAFKA_BOOTSTRAP_SERVERS is not set and {path} does not exist: start the broker first")


S = TypeVar("S", bound=ServiceSettings)


def load_settings(cls: type[S]) -> S:
    """Build settings, turning validation errors into one clear start-up message."""
    from pydantic import ValidationError

    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = [f"{prefix}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()]
        raise SystemExit(f"invalid {cls.service_name} settings:\n  " + "\n  ".join(lines)) from None
