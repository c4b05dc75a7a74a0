"""Session fixtures: real PostgreSQL database, embedded broker, and the running stack."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.embedded_broker import start_mock_cluster
from tests.support.infra import throwaway_database
from tests.support.stack import Stack, migrate_all, running_stack, stack_env


@pytest.fixture(scope="session")
def broker_address() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS if set, else a fresh embedded broker for this test session."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    owner, address = start_mock_cluster()
    yield address
    del owner


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session."""
    with throwaway_database() as url:
        yield url


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave logs and screenshots for people to look at."""
    path = Path(os.environ.get("TEST_ARTIFACTS", "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def migrated_env(database_url: str, broker_address: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Service environment on the session database, with every schema migrated."""
    env = stack_env(database_url, broker_address, tmp_path_factory.mktemp("data"))
    migrate_all(env)
    return env


@pytest.fixture(scope="session")
def stack(migrated_env: dict[str, str], artifacts_dir: Path) -> Iterator[Stack]:
    """The four services running under uvicorn, shared by the tests of a session."""
    with running_stack(migrated_env, artifacts_dir / "stack-logs") as running:
        yield running
