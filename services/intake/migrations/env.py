"""Alembic environment of the intake service (see shared.migrate)."""

from services.intake.models import metadata
from services.intake.settings import Settings
from shared.migrate import run_env

run_env(metadata, Settings)
