"""The outbox relay on a real PostgreSQL database and the embedded broker.

One statement takes the relay lock, picks the oldest unsent rows and marks them; the marks must
stand only once the broker acknowledged the batch, and a relay that does not hold the lock must
leave the rows alone. The relay wakes on other processes' NOTIFY, not on its own.
"""

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from shared.bus import KafkaBus
from shared.db import NOTIFY_ORIGIN, Database, add_delivery_tables
from shared.envelope import from_kafka
from shared.events.loyalty import PointsChanged
from shared.outbox import Emitter, OutboxRelay, notify_channel
from shared.settings import ServiceSettings
from shared.topics import Topic
from tests.support.schemas import fresh_schema

metadata = sa.MetaData()
tables = add_delivery_tables(metadata)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A Database on a fresh schema holding the delivery tables."""
    async with fresh_schema(database_url, metadata, tables, prefix="relay", pool_size=3) as database:
        yield database


def closed_port() -> str:
    """A loopback address nothing listens on: a broker that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


async def emit_points(db: Database, customer: str, count: int) -> list[str]:
    """Emit ``count`` events of one customer, one transaction each; their ids in emission order."""
    emitter = Emitter(db, "/test")
    ids = []
    for n in range(count):
        async with db.transaction() as conn:
            event = PointsChanged(customer_id=customer, entry_id=str(uuid.uuid4()), kind="earn", points=n + 1,
                                  balance=n + 1, reason="test")
            env = await emitter.emit(conn, event, subject=customer, correlation_id=customer)
            ids.append(env.id)
    return ids


async def unsent(db: Database) -> int:
    """Outbox rows not marked published."""
    outbox = db.tables.outbox
    async with db.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        return int(await conn.scalar(query) or 0)


async def read_ids(bootstrap: str, customer: str, expected: int) -> list[str]:
    """Event ids of one customer on the loyalty topic, in partition order."""
    consumer = AIOKafkaConsumer(Topic.LOYALTY.value, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"relay-test-{uuid.uuid4().hex[:6]}", fetch_max_wait_ms=50)
    await consumer.start()
    seen: list[str] = []
    try:
        async with asyncio.timeout(30):
            while len(seen) < expected:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        env = from_kafka(record.key, record.value, list(record.headers))
                        if env.subject == customer:
                            seen.append(env.id)
    finally:
        await consumer.stop()
    return seen


async def test_relay_publishes_every_row_once_in_order_and_marks_it(db: Database, broker_address: str) -> None:
    customer = f"relay-{uuid.uuid4().hex[:6]}"
    ids = await emit_points(db, customer, 7)
    bus = KafkaBus(ServiceSettings(kafka_bootstrap_servers=broker_address), "relay-test")
    relay = OutboxRelay(db, bus, ServiceSettings(kafka_bootstrap_servers=broker_address, outbox_batch=3))
    try:
        sent = [await relay.drain_once() for _ in range(4)]
    finally:
        await bus.close()
    assert sent == [3, 3, 1, 0]
    assert await unsent(db) == 0
    assert await read_ids(broker_address, customer, 7) == ids


async def test_rows_stay_unsent_when_the_broker_refuses_them(db: Database) -> None:
    await emit_points(db, f"relay-{uuid.uuid4().hex[:6]}", 2)
    settings = ServiceSettings(kafka_bootstrap_servers=closed_port())
    bus = KafkaBus(settings, "relay-test")
    relay = OutboxRelay(db, bus, settings)
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever the client raises, nothing may be marked
            await relay.drain_once()
    finally:
        await bus.close()
    assert await unsent(db) == 2


async def test_a_relay_without_the_lock_leaves_the_rows_alone(db: Database) -> None:
    await emit_points(db, f"relay-{uuid.uuid4().hex[:6]}", 2)
    settings = ServiceSettings(kafka_bootstrap_servers=closed_port())
    relay = OutboxRelay(db, KafkaBus(settings, "relay-test"), settings)
    async with db.engine.begin() as holder:  # another replica's relay in the middle of its batch
        await holder.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.literal(relay._lock_key, sa.BigInteger))))
        assert await relay.drain_once() == 0
    assert await unsent(db) == 2


async def test_relay_wakes_on_other_processes_notify_only(db: Database) -> None:
    settings = ServiceSettings(kafka_bootstrap_servers=closed_port())
    relay = OutboxRelay(db, KafkaBus(settings, "relay-test"), settings)
    channel = notify_channel(db.schema)
    relay._on_notify(None, 0, channel, NOTIFY_ORIGIN)
    assert not relay._wake.is_set()
    relay._on_notify(None, 0, channel, "another-replica")
    assert relay._wake.is_set()


async def test_a_transaction_that_emits_notifies_with_its_origin(db: Database) -> None:
    raw = await db.engine.connect()
    heard: list[str] = []
    try:
        driver = (await raw.get_raw_connection()).driver_connection
        await driver.add_listener(notify_channel(db.schema), lambda *args: heard.append(args[3]))
        await emit_points(db, "notify-origin", 1)
        async with asyncio.timeout(10):
            while not heard:
                await asyncio.sleep(0.05)
    finally:
        await raw.close()
    assert heard == [NOTIFY_ORIGIN]


async def test_the_claim_picks_once_however_stale_the_statistics(db: Database) -> None:
    # Statistics taken while everything was published, then a backlog: the planner expects one unsent row.
    outbox = db.tables.outbox
    async with db.engine.begin() as conn:
        await conn.execute(sa.text(
            "INSERT INTO outbox (event_id, event_type, topic, envelope, created_at, published_at) "
            "SELECT 'sent-' || g, 't', 't', '{}', now(), now() FROM generate_series(1, 20000) g"))
        await conn.execute(sa.text("ANALYZE outbox"))
        await conn.execute(sa.text(
            "INSERT INTO outbox (event_id, event_type, topic, envelope, created_at) "
            "SELECT 'unsent-' || g, 't', 't', '{}', now() FROM generate_series(1, 5000) g"))
    relay = OutboxRelay(db, None, ServiceSettings(outbox_batch=100))  # type: ignore[arg-type]  # no publishing here
    claim = relay._claim.compile(db.engine.sync_engine)
    values = claim.construct_params({"limit": 100, "now": datetime.now(UTC)})
    async with db.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        explained = driver.transaction()
        await explained.start()  # EXPLAIN ANALYZE runs the UPDATE: rolled back below
        positional = [values[name] for name in claim.positiontup or []]
        rows = await driver.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) {claim}", *positional)
        await explained.rollback()
    plan = "\n".join(row[0] for row in rows)
    picking = [line for line in plan.splitlines() if "ix_outbox_unpublished" in line]
    assert picking and all("loops=1)" in line for line in picking), plan
    async with db.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).where(outbox.c.published_at.is_(None))) == 5000
