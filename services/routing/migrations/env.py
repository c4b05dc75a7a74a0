"""Alembic environment of the routing service (see shared.migrate)."""

from services.routing.models import metadata
from services.routing.settings import Settings
from shared.migrate import run_env

run_env(metadata, Settings)
