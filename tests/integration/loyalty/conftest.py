"""Loyalty alone, on its own throwaway PostgreSQL database and its own embedded broker.

Its own broker keeps its consumer group apart from any full stack another test module runs, so
every event these tests publish reaches this loyalty process and no other.
"""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from services.loyalty.policy import DEFAULT_POLICY_PATH
from shared.embedded_broker import start_mock_cluster
from tests.integration.loyalty.helpers import Bus, Loyalty
from tests.support.stack import private_service_env, running_stack


@pytest.fixture(scope="session")
def loyalty_broker() -> Iterator[str]:
    """A broker only these tests use."""
    owner, address = start_mock_cluster()
    yield address
    del owner


@pytest.fixture(scope="session")
def loyalty_policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged policy, except that the post-recovery survey goes out at once."""
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["surveys"]["recovery_followup_after_hours"] = 0
    path = tmp_path_factory.mktemp("loyalty-policy") / "policy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def loyalty_env(
    loyalty_broker: str, loyalty_policy_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Environment of the loyalty process, with its schema migrated."""
    with private_service_env(
        "loyalty",
        tmp_path_factory.mktemp("loyalty-data"),
        loyalty_broker,
        LOYALTY_POLICY_PATH=str(loyalty_policy_file),
        LOYALTY_SWEEP_INTERVAL_SECONDS="0.3",
        LOYALTY_TIMER_POLL_SECONDS="0.1",
    ) as env:
        yield env


@pytest.fixture(scope="session")
def loyalty(loyalty_env: dict[str, str], artifacts_dir: Path) -> Iterator[Loyalty]:
    """The loyalty service under uvicorn."""
    with running_stack(loyalty_env, artifacts_dir / "loyalty-logs", names=("loyalty",)) as stack:
        yield Loyalty(stack, loyalty_env)


@pytest.fixture(scope="session")
async def bus(loyalty_broker: str) -> AsyncIterator[Bus]:
    """Publishes events the way the other services and the shop do."""
    producer = AIOKafkaProducer(bootstrap_servers=loyalty_broker, enable_idempotence=True, acks="all")
    await producer.start()
    yield Bus(producer, loyalty_broker)
    await producer.stop()
