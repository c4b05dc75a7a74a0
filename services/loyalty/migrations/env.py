"""Alembic environment of the loyalty service (see shared.migrate)."""

from services.loyalty.models import metadata
from services.loyalty.settings import Settings
from shared.migrate import run_env

run_env(metadata, Settings)
