"""The incident fan-out waits while the consumers of compensation events are too far behind (real broker)."""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from services.recovery.backpressure import ConsumerBackpressure, over_limit
from services.recovery.fanout import FanOut
from services.recovery.models import delivery, incidents
from services.recovery.policy import load_policy
from services.recovery.settings import Settings
from shared.bus import KafkaBus
from shared.db import Database, make_engine
from shared.lag import GroupLagReader
from shared.outbox import Emitter
from shared.settings import ServiceSettings
from tests.integration.recovery.test_recovery_fanout_queue import _declare
from tests.support.stack import private_service_env

EVENTS_PER_PARTITION = 10


@pytest.fixture
async def topic(broker_address: str) -> str:
    """A topic of its own with ten events on each of its four partitions."""
    name = f"bp-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=broker_address, acks="all")
    await producer.start()
    try:
        for partition in range(4):
            for n in range(EVENTS_PER_PARTITION):
                await producer.send_and_wait(name, b"{}", key=f"k{n}".encode(), partition=partition)
    finally:
        await producer.stop()
    return name


@pytest.fixture
async def bus(broker_address: str) -> AsyncIterator[KafkaBus]:
    """The bus a recovery process would have."""
    bus = KafkaBus(ServiceSettings(kafka_bootstrap_servers=broker_address), "bp-test")
    yield bus
    await bus.close()


async def commit(broker: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit offsets for ``group`` as its consumer would after handling events."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


def paused() -> float | None:
    return REGISTRY.get_sample_value("redress_incident_fanout_paused")


async def test_the_fan_out_waits_while_a_group_is_too_far_behind_and_goes_on_once_it_caught_up(
    bus: KafkaBus, topic: str, broker_address: str
) -> None:
    group = f"bp-{uuid.uuid4().hex[:8]}"
    reader = GroupLagReader(bus, [group], topic)
    guard = ConsumerBackpressure(reader, limit=25, every_seconds=0)
    try:
        assert await reader.behind() == {}  # a group that never consumed the topic is not waited for
        assert await guard.holding() is False
        await commit(broker_address, group, {TopicPartition(topic, 0): 4})
        # Partition 0 from offset 4, the three others from their beginning: 6 + 30 events to go.
        assert await reader.behind() == {group: 36}
        assert await guard.holding() is True
        assert paused() == 1
        await commit(broker_address, group, {TopicPartition(topic, p): EVENTS_PER_PARTITION for p in range(4)})
        assert await reader.behind() == {group: 0}
        assert await guard.holding() is False
        assert paused() == 0
    finally:
        await guard.close()


async def test_the_lag_is_read_at_most_once_per_interval(bus: KafkaBus, topic: str, broker_address: str) -> None:
    group = f"bp-{uuid.uuid4().hex[:8]}"
    await commit(broker_address, group, {TopicPartition(topic, 0): 0})
    guard = ConsumerBackpressure(GroupLagReader(bus, [group], topic), limit=25, every_seconds=3600)
    try:
        assert await guard.holding() is True
        await commit(broker_address, group, {TopicPartition(topic, p): EVENTS_PER_PARTITION for p in range(4)})
        assert await guard.holding() is True  # the interval has not passed: the last reading holds
    finally:
        await guard.close()


async def test_a_lag_that_cannot_be_read_never_stops_the_fan_out(caplog: pytest.LogCaptureFixture) -> None:
    bus = KafkaBus(ServiceSettings(kafka_bootstrap_servers="127.0.0.1:9"), "bp-test")  # nothing listens there
    guard = ConsumerBackpressure(GroupLagReader(bus, ["redress-loyalty"], "redress.compensation.v1"), 1, 0)
    with caplog.at_level(logging.INFO, logger="services.recovery.backpressure"):
        assert await guard.holding() is False
    assert "the incident fan-out goes on" in caplog.text
    await guard.close()
    await bus.close()


def test_no_limit_means_no_backpressure() -> None:
    assert over_limit({"redress-loyalty": 10**9}, 0) == {}
    assert over_limit({"redress-loyalty": 30, "other": 5}, 20) == {"redress-loyalty": 30}


@pytest.fixture(scope="module")
def recovery_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A freshly migrated database of recovery's own."""
    with private_service_env("recovery", tmp_path_factory.mktemp("recovery-backpressure")) as env:
        yield env


async def test_the_fan_out_issues_no_more_while_loyalty_is_too_far_behind(
    recovery_env: dict[str, str], bus: KafkaBus, topic: str, broker_address: str
) -> None:
    group = f"bp-{uuid.uuid4().hex[:8]}"
    await commit(broker_address, group, {TopicPartition(topic, 0): 0})  # 40 events behind, limit 25
    settings = Settings(database_url=recovery_env["DATABASE_URL"], incident_poll_seconds=0.05, incident_batch_size=2)
    db = Database(make_engine(settings), delivery, settings.db_schema)
    guard = ConsumerBackpressure(GroupLagReader(bus, [group], topic), limit=25, every_seconds=0)
    fan_out = FanOut(db, Emitter(db, "/redress/recovery"), load_policy(settings.policy_path), settings, guard)
    stop = asyncio.Event()
    task = asyncio.create_task(fan_out.run(stop.is_set))
    try:
        incident_id = await _declare(db, fan_out, [f"bp-cust-{n}" for n in range(5)])
        await asyncio.sleep(1.5)  # the fan-out looks several times meanwhile
        # An idle fan-out reads no lag: the incident's first batch goes before the first reading, then it waits.
        assert await _issued(db, incident_id) == 2
        assert paused() == 1
        await commit(broker_address, group, {TopicPartition(topic, p): EVENTS_PER_PARTITION for p in range(4)})
        for _ in range(200):
            if await _issued(db, incident_id) == 5:
                break
            await asyncio.sleep(0.05)
        assert await _issued(db, incident_id) == 5
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await guard.close()
        await db.engine.dispose()


async def _issued(db: Database, incident_id: str) -> int:
    async with db.engine.connect() as conn:
        return int(await conn.scalar(sa.select(incidents.c.issued).where(incidents.c.incident_id == incident_id)) or 0)


async def test_an_idle_fan_out_reads_no_lag(recovery_env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(database_url=recovery_env["DATABASE_URL"], incident_poll_seconds=0.05)
    db = Database(make_engine(settings), delivery, settings.db_schema)
    bus = KafkaBus(ServiceSettings(kafka_bootstrap_servers="127.0.0.1:9"), "bp-test")  # a reading would fail, logged
    guard = ConsumerBackpressure(GroupLagReader(bus, ["redress-loyalty"], "redress.compensation.v1"), 1, 0)
    fan_out = FanOut(db, Emitter(db, "/redress/recovery"), load_policy(settings.policy_path), settings, guard)
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="services.recovery.backpressure"):
        task = asyncio.create_task(fan_out.run(stop.is_set))
        await asyncio.sleep(0.5)  # about ten idle rounds
        stop.set()
        await asyncio.wait_for(task, 30)
    await guard.close()
    await bus.close()
    await db.engine.dispose()
    assert "cannot read the lag" not in caplog.text
