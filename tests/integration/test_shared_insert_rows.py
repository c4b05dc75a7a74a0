"""Multi-row inserts as column arrays (``insert_rows``) and the consumer's concurrent partitions, on PostgreSQL."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import ConsumerRecord, TopicPartition

from shared.bus import KafkaBus
from shared.consumer import BatchableHandler, EventConsumer, HandlerContext
from shared.db import Database, UtcDateTime, add_delivery_tables, any_of, defer_insert, insert_rows
from shared.envelope import new_event, to_kafka
from shared.events import EventData
from shared.events.loyalty import PointsChanged, TierChanged
from shared.events.vocabulary import CustomerTier
from shared.outbox import Emitter
from shared.settings import ServiceSettings
from shared.topics import Topic
from tests.support.events import EventTap
from tests.support.schemas import capture_statements, fresh_schema, sqlite_file

metadata = sa.MetaData()
tables = add_delivery_tables(metadata)
items = sa.Table(
    "items", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("extra", sa.JSON, nullable=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("note", sa.String(40), nullable=True),
)
NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


def item(i: int, **extra: Any) -> dict[str, Any]:
    """A row whose JSON column holds a list (the case an array of JSON would take for a second dimension)."""
    return {"id": f"i{i}", "n": i, "tags": [f"t{i}", i], "extra": None, "at": NOW, **extra}


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A Database on a fresh schema holding the delivery tables and an items table."""
    async with fresh_schema(database_url, metadata, tables, prefix="ir", pool_size=4) as database:
        yield database


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """The same tables in a SQLite file."""
    async with sqlite_file(tmp_path / "items.db", metadata, tables) as database:
        yield database


async def stored(db: Database) -> list[dict[str, Any]]:
    """Every item, by id."""
    async with db.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(sa.select(items).order_by(items.c.n))).mappings()]



@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_rows_go_in_with_their_values_and_conflicts_are_skipped(
    backend: str, db: Database, sqlite_db: Database
) -> None:
    database = db if backend == "postgresql" else sqlite_db
    async with database.transaction() as conn:
        first = await insert_rows(conn, items, [item(1), item(2, extra={"k": [1, 2]})], returning=[items.c.id])
    async with database.transaction() as conn:
        again = await insert_rows(conn, items, [item(2, n=20), item(3)], skip_conflicts=True, returning=[items.c.id])
    assert [r.id for r in first] == ["i1", "i2"]
    assert [r.id for r in again] == ["i3"]  # i2 existed: skipped, its values kept
    rows = await stored(database)
    assert [(r["id"], r["n"], r["tags"], r["extra"], r["at"]) for r in rows] == [
        ("i1", 1, ["t1", 1], None, NOW), ("i2", 2, ["t2", 2], {"k": [1, 2]}, NOW), ("i3", 3, ["t3", 3], None, NOW),
    ]


async def test_one_statement_text_for_any_number_of_rows(db: Database) -> None:
    seen = capture_statements(db)
    for start, count in ((0, 2), (10, 7), (30, 1)):
        async with db.transaction() as conn:
            await insert_rows(conn, items, [item(start + i) for i in range(count)])
            ids = [f"i{start + i}" for i in range(count)]
            await conn.execute(sa.select(items.c.id).where(any_of(conn, items.c.id, ids)))
    inserts = {s for s in seen if s.startswith("INSERT INTO items")}
    selects = {s for s in seen if s.startswith("SELECT items.id")}
    assert len(inserts) == 1 and "unnest" in next(iter(inserts))
    assert len(selects) == 1
    assert len(await stored(db)) == 10


async def test_rows_with_different_columns_all_go_in(db: Database) -> None:
    async with db.transaction() as conn:
        await insert_rows(conn, items, [item(1), item(2, note="second"), item(3)])
    assert [r["note"] for r in await stored(db)] == [None, "second", None]


def record(partition: int, offset: int, customer: str) -> ConsumerRecord:
    """A points event of one customer as fetched from ``partition``."""
    event = PointsChanged(customer_id=customer, entry_id=str(uuid.uuid4()), kind="earn", points=1, balance=1,
                          reason="test")
    key, value, headers = to_kafka(new_event(event, source="/test", subject=customer, correlation_id="corr"))
    return ConsumerRecord("redress.loyalty.v1", partition, offset, 0, 0, key, value, None, len(key), len(value),
                          headers)


def consumer_of(db: Database, handler: Any, concurrency: int, bus: KafkaBus | None = None) -> EventConsumer:
    """A consumer of points events with ``handler`` and the given partition concurrency."""
    return EventConsumer(
        service="ir-test", settings=ServiceSettings(kafka_partition_concurrency=concurrency), db=db,
        bus=bus,  # type: ignore[arg-type]  # None: nothing in the test reaches the broker
        emitter=Emitter(db, source="/test"), handlers={PointsChanged.event_type: handler}, topics=[],
    )


async def test_partitions_of_a_fetch_are_handled_in_concurrent_transactions_each_in_order(db: Database) -> None:
    # Each partition's first event waits for the other partition's: only concurrent transactions get through.
    both_inside = asyncio.Barrier(2)
    met: list[bool] = []
    handled: dict[str, list[int]] = {}

    async def handler(ctx: HandlerContext, event: EventData) -> None:
        assert isinstance(event, PointsChanged)
        seen = handled.setdefault(event.customer_id, [])
        if not seen:
            try:
                await asyncio.wait_for(both_inside.wait(), timeout=10)
                met.append(True)
            except TimeoutError:
                met.append(False)
        seen.append(len(seen))
        await ctx.conn.execute(sa.insert(items).values(item(len(seen), id=ctx.envelope.id[:40])))

    fetch = {TopicPartition("redress.loyalty.v1", p): [record(p, o, f"cust-{p}") for o in range(3)] for p in (0, 1)}
    await consumer_of(db, handler, concurrency=2).process_fetch(fetch)
    assert met == [True, True]
    assert handled == {"cust-0": [0, 1, 2], "cust-1": [0, 1, 2]}
    async with db.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(tables.inbox)) == 6


async def test_a_failing_partition_group_does_not_undo_the_other(db: Database, broker_address: str) -> None:
    bad = f"cust-bad-{uuid.uuid4().hex[:8]}"

    async def handler(ctx: HandlerContext, event: EventData) -> None:
        assert isinstance(event, PointsChanged)
        if event.customer_id == bad:
            raise ValueError("this event cannot be handled")
        await ctx.conn.execute(sa.insert(items).values(item(0, id=ctx.envelope.id[:40], note=event.customer_id)))

    bus = KafkaBus(ServiceSettings(kafka_bootstrap_servers=broker_address), "ir-test")
    consumer = consumer_of(db, handler, concurrency=2, bus=bus)
    consumer.settings.consumer_max_retries = 0
    fetch = {TopicPartition("redress.loyalty.v1", 0): [record(0, 0, bad)],
             TopicPartition("redress.loyalty.v1", 1): [record(1, o, "cust-good") for o in range(2)]}
    async with EventTap(broker_address, [str(Topic.DEAD_LETTER)], from_beginning=False) as tap:
        try:
            await consumer.process_fetch(fetch)
        finally:
            await bus.close()
        dead = await tap.wait_for(lambda env: env.subject == bad)
    assert len(dead) == 1
    assert [r["note"] for r in await stored(db)] == ["cust-good", "cust-good"]


async def _defer_over_an_existing_key(target: Database) -> list[tuple[str, str | None]]:
    """Store i1, then defer i1 again and i2 with skip_conflicts; the stored (id, note) pairs."""
    async with target.transaction() as conn:
        await conn.execute(sa.insert(items).values(item(1, note="first")))
    async with target.transaction() as conn:
        await defer_insert(conn, items, [item(1, note="again"), item(2)], skip_conflicts=True)
    return [(r["id"], r["note"]) for r in await stored(target)]


async def test_deferred_rows_whose_key_exists_are_skipped_at_commit(db: Database) -> None:
    assert await _defer_over_an_existing_key(db) == [("i1", "first"), ("i2", None)]


async def test_deferred_rows_skip_conflicts_on_sqlite_too(sqlite_db: Database) -> None:
    assert await _defer_over_an_existing_key(sqlite_db) == [("i1", "first"), ("i2", None)]


async def test_one_tables_deferred_rows_cannot_both_skip_and_not_skip_conflicts(db: Database) -> None:
    with pytest.raises(ValueError, match="both with and without"):
        async with db.transaction() as conn:
            await defer_insert(conn, items, [item(1)])
            await defer_insert(conn, items, [item(2)], skip_conflicts=True)
    assert await stored(db) == []


async def test_a_later_run_of_a_consumer_transaction_reads_what_an_earlier_run_deferred(db: Database) -> None:
    seen_by_tier_handler: list[int] = []

    async def points_one(ctx: HandlerContext, event: EventData) -> None:
        await points_many([(ctx, event)])

    async def points_many(events: list[tuple[HandlerContext, EventData]]) -> None:
        rows = [item(n, id=ctx.envelope.id[:40]) for n, (ctx, _) in enumerate(events)]
        await defer_insert(events[0][0].conn, items, rows)

    async def tier(ctx: HandlerContext, event: EventData) -> None:
        seen_by_tier_handler.append(await ctx.conn.scalar(sa.select(sa.func.count()).select_from(items)))

    changed = TierChanged(customer_id="cust-0", from_tier=None, to_tier=CustomerTier.HIGH_VALUE, changed_at=NOW)
    key, value, headers = to_kafka(new_event(changed, source="/test", subject="cust-0", correlation_id="corr"))
    tier_record = ConsumerRecord("redress.loyalty.v1", 0, 2, 0, 0, key, value, None, len(key), len(value), headers)
    consumer = EventConsumer(
        service="ir-test", settings=ServiceSettings(), db=db, bus=None,  # type: ignore[arg-type]
        emitter=Emitter(db, source="/test"), topics=[],
        handlers={PointsChanged.event_type: BatchableHandler(one=points_one, many=points_many),
                  TierChanged.event_type: tier},
    )
    await consumer.process([record(0, 0, "cust-0"), record(0, 1, "cust-0"), tier_record])
    assert seen_by_tier_handler == [2]
    assert len(await stored(db)) == 2
