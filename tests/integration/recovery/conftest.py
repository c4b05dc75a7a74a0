"""Recovery's own infrastructure for integration tests: a private broker and database, the service under uvicorn.

Recovery's tests get their own broker and database so that no other recovery process (the shared
stack's, another test's) joins the ``redress-recovery`` consumer group and takes their events.
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.recovery.policy import DEFAULT_POLICY_PATH
from shared.devstack import ServiceProcess
from tests.integration.recovery.helpers import Publisher, World
from tests.support.events import EventTap
from tests.support.stack import private_service_env, service_process


def private_env(data_dir: Path) -> AbstractContextManager[dict[str, str]]:
    """Environment on a fresh broker and a freshly migrated database (recovery's schema only)."""
    return private_service_env(
        "recovery",
        data_dir,
        RECOVERY_TIMER_POLL_SECONDS="0.1",
        RECOVERY_INCIDENT_POLL_SECONDS="0.2",
        RECOVERY_DB_POOL_SIZE="4",
    )


def recovery_process(
    env: dict[str, str], log_dir: Path, name: str = "recovery", **extra: str
) -> AbstractContextManager[ServiceProcess]:
    """One recovery process under uvicorn on a free port, stopped afterwards."""
    return service_process("recovery", env, log_dir, name, **extra)


def policy_file(tmp: Path, name: str, **changes: Any) -> Path:
    """The packaged policy with dotted-path changes (``budgets__default_monthly_minor=...``)."""
    data: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = f"test-{name}"
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value
    path = tmp / f"{name}-policy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def recovery_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private broker and database for one test module."""
    with private_env(tmp_path_factory.mktemp("recovery-data")) as env:
        yield env


@pytest.fixture
def fresh_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private broker and database for one test (e.g. one that kills its service)."""
    with private_env(tmp_path / "data") as env:
        yield env


@pytest.fixture(scope="module")
def recovery(recovery_env: dict[str, str], artifacts_dir: Path) -> Iterator[ServiceProcess]:
    """Recovery with the packaged policy."""
    with recovery_process(recovery_env, artifacts_dir / "recovery-it") as proc:
        yield proc


@pytest.fixture
async def world(recovery: ServiceProcess, recovery_env: dict[str, str]) -> AsyncIterator[World]:
    """The running service, a way to publish the events other services publish, and a tap on the topics."""
    async with EventTap(recovery_env["KAFKA_BOOTSTRAP_SERVERS"], from_beginning=False) as tap:
        publisher = Publisher(recovery_env["KAFKA_BOOTSTRAP_SERVERS"])
        await publisher.start()
        try:
            yield World(recovery, recovery_env, publisher, tap)
        finally:
            await publisher.stop()
