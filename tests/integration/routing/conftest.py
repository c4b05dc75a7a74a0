"""Routing's own infrastructure for integration tests: a private broker and database, the service under uvicorn.

Routing's tests get their own broker and database so that no other routing process (the shared
stack's, another test's) joins the ``redress-routing`` consumer group and routes their complaints.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from services.routing.policy import DEFAULT_POLICY_PATH
from shared.devstack import ServiceProcess
from shared.envelope import Envelope, new_event, to_kafka
from shared.events import EventData
from shared.events.complaints import Classification, ComplaintReceived, Exposure
from shared.events.vocabulary import Channel, Role
from tests.support.events import EventTap
from tests.support.stack import operator_token, private_service_env, service_process


@pytest.fixture(scope="module")
def routing_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment for routing processes on a private broker and a migrated private database."""
    with private_service_env("routing", tmp_path_factory.mktemp("routing-data")) as env:
        yield env


def routing_process(
    env: dict[str, str], log_dir: Path, name: str = "routing", **extra: str
) -> AbstractContextManager[ServiceProcess]:
    """One routing process under uvicorn on a free port, stopped afterwards."""
    return service_process("routing", env, log_dir, name, **extra)


@pytest.fixture(scope="module")
def routing(routing_env: dict[str, str], artifacts_dir: Path) -> Iterator[ServiceProcess]:
    """Routing with the packaged policy."""
    with routing_process(routing_env, artifacts_dir / "routing-it") as proc:
        yield proc


def client(proc: ServiceProcess, role: Role | None = Role.AGENT, subject: str = "agent-li") -> httpx.Client:
    """An HTTP client for a routing process, as an operator with ``role`` (none: no token)."""
    headers = {"Authorization": f"Bearer {operator_token(role, subject)}"} if role else {}
    return httpx.Client(base_url=proc.url, headers=headers, timeout=10)


def fast_policy(tmp: Path, **targets: tuple[str, str, str]) -> Path:
    """The packaged policy with SLA targets in seconds, so clocks run out during a test."""
    data: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = "test-fast"
    for tier, (first, update, resolution) in targets.items():
        data["tiers"][tier].update(first_response=first, next_update=update, resolution=resolution)
    path = tmp / "fast-policy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def complaint(
    customer_id: str | None = None,
    category: str = "product_usage",
    cues: tuple[str, ...] = (),
    departments: tuple[str, ...] = (),
    public: bool = False,
    reach: int = 0,
    text: str = "The blender I bought stopped working after two days.",
) -> ComplaintReceived:
    """A complaint.received.v1 as intake publishes it."""
    return ComplaintReceived(
        complaint_id=str(uuid.uuid4()),
        customer_id=customer_id or f"cust-{uuid.uuid4().hex[:8]}",
        channel=Channel.SOCIAL if public else Channel.WEB,
        received_at=datetime.now(UTC),
        text=text,
        subject="Broken blender",
        exposure=Exposure(public=public, reach=reach),
        classification=Classification.model_validate(
            {"category": category, "urgency_cues": list(cues), "departments": list(departments)}
        ),
    )


Publish = Callable[[EventData], Any]


def unique(events: Iterable[Envelope]) -> list[Envelope]:
    """Events once each, in arrival order: delivery is at least once, so the broker may carry a copy."""
    return list({e.id: e for e in events}.values())


async def wait_unique(
    tap: EventTap, predicate: Callable[[Envelope], bool], count: int = 1, timeout: float = 30.0
) -> list[Envelope]:
    """Wait until ``count`` distinct events match (copies of one event count once)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = unique(e for e in tap.events if predicate(e))
        if len(found) >= count:
            return found
        if asyncio.get_running_loop().time() > deadline:
            seen = [(e.type, e.subject) for e in tap.events[-20:]]
            raise AssertionError(f"expected {count} distinct matching events within {timeout}s; last seen: {seen}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def publish(routing_env: dict[str, str]) -> AsyncIterator[Callable[..., Any]]:
    """Publish events to the private broker the way their producing services do."""
    producer = AIOKafkaProducer(bootstrap_servers=routing_env["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    await producer.start()

    async def send(data: EventData, correlation_id: str | None = None) -> Envelope:
        subject = getattr(data, "complaint_id", None) or data.partition_key()
        env = new_event(data, source="/tests", subject=subject, correlation_id=correlation_id or subject)
        key, value, headers = to_kafka(env)
        await producer.send_and_wait(str(data.topic), value=value, key=key, headers=headers)
        return env

    try:
        yield send
    finally:
        await producer.stop()
