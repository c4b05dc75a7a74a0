"""Alembic environment of the recovery service (see shared.migrate)."""

from services.recovery.models import metadata
from services.recovery.settings import Settings
from shared.migrate import run_env

run_env(metadata, Settings)
