"""Group commit, deferred outbox rows and batched inbox claims on a real PostgreSQL database."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import sqlalchemy as sa
from aiokafka import ConsumerRecord
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from shared.consumer import EventConsumer, HandlerContext
from shared.db import Database, add_delivery_tables, defer_insert, driver_in_transaction, ping_idle_connections
from shared.envelope import new_event, to_kafka
from shared.events import EventData
from shared.events.loyalty import PointsChanged
from shared.group_commit import GroupCommit, Prefetch
from shared.outbox import Emitter
from shared.settings import ServiceSettings
from tests.support.schemas import fresh_schema

metadata = sa.MetaData()
tables = add_delivery_tables(metadata)
notes = sa.Table(
    "notes", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("ref", sa.String(40), nullable=False, unique=True),
)


def points_event(customer: str = "cust-1", points: int = 10) -> PointsChanged:
    """A small valid event to emit."""
    return PointsChanged(customer_id=customer, entry_id=str(uuid.uuid4()), kind="earn", points=points,
                         balance=points, reason="test")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A Database on a fresh schema holding the delivery tables and a notes table."""
    async with fresh_schema(database_url, metadata, tables, prefix="gc") as database:
        yield database


async def count(db: Database, table: sa.Table) -> int:
    """Rows in a table."""
    async with db.engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def test_concurrent_works_share_transactions_and_all_commit(db: Database) -> None:
    group = GroupCommit(db, max_in_flight=1)

    async def work(ref: str) -> str:
        async def store(conn: AsyncConnection) -> str:
            await defer_insert(conn, notes, [{"ref": ref}])
            return ref

        return await group.run(store)

    refs = [f"r{i}" for i in range(50)]
    assert await asyncio.gather(*(work(r) for r in refs)) == refs
    assert await count(db, notes) == 50
    assert group.works == 50
    assert group.transactions < 50


async def test_a_failing_work_fails_alone_and_the_others_commit(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(sa.insert(notes).values(ref="taken"))
    group = GroupCommit(db, max_in_flight=1)

    async def insert(ref: str) -> str:
        async def store(conn: AsyncConnection) -> str:
            await conn.execute(sa.insert(notes).values(ref=ref))
            return ref

        return await group.run(store)

    results = await asyncio.gather(insert("a"), insert("taken"), insert("b"), insert("c"), return_exceptions=True)
    assert results[0] == "a" and results[2:] == ["b", "c"]
    assert isinstance(results[1], IntegrityError)
    assert await count(db, notes) == 4


async def _claim_refs(conn: AsyncConnection, refs: list[str]) -> list[bool]:
    """A prefetch's ``fetch_all``: claim each ref in order through the driver, True when new (one round trip)."""
    driver = await driver_in_transaction(conn)
    rows = await driver.fetchmany(
        "WITH c AS (INSERT INTO notes (ref) VALUES ($1) ON CONFLICT DO NOTHING RETURNING ref)"
        " SELECT $1::varchar AS ref, count(*) AS new FROM c",
        [(ref,) for ref in refs],
    )
    return [bool(row["new"]) for row in rows]


def claiming_group(db: Database) -> tuple[Callable[..., Awaitable[bool]], list[list[str]]]:
    """A group whose works claim a ref read by their prefetch (a work may fail), and the reads it made."""
    group = GroupCommit(db, max_in_flight=1)
    calls: list[list[str]] = []

    async def fetch_all(conn: AsyncConnection, refs: list[str]) -> list[bool]:
        calls.append(list(refs))
        return await _claim_refs(conn, refs)

    async def claim(ref: str, fail: bool = False) -> bool:
        prefetch: Prefetch[bool] = Prefetch(fetch_all, ref)

        async def work(conn: AsyncConnection) -> bool:
            if fail:
                raise ValueError("this work fails")
            assert prefetch.result is not None  # read before any work of the group ran
            return prefetch.result

        return await group.run(work, prefetch)

    return claim, calls


async def test_a_groups_prefetches_are_read_together_before_its_works_run(db: Database) -> None:
    claim, calls = claiming_group(db)
    refs = ["p0", "p1", "p0", "p2", "p3", "p1"]
    assert await asyncio.gather(*(claim(r) for r in refs)) == [True, True, False, True, True, False]
    assert sum(len(c) for c in calls) == len(refs) and len(calls) < len(refs)  # one read per group, not per work
    assert await count(db, notes) == 4


async def test_a_failed_groups_works_read_their_prefetch_again_alone(db: Database) -> None:
    claim, calls = claiming_group(db)
    first = asyncio.create_task(claim("q0"))  # goes alone at once; the next three queue behind it
    await asyncio.sleep(0)
    rest = asyncio.gather(claim("q1"), claim("q2", True), claim("q3"), return_exceptions=True)
    assert await first is True
    results = await rest
    # The group of three was rolled back with its claims; alone, each claimed its ref anew.
    assert results[0] is True and isinstance(results[1], ValueError) and results[2] is True
    assert calls[1] == ["q1", "q2", "q3"] and calls[2:] == [["q1"], ["q2"], ["q3"]]
    async with db.engine.connect() as conn:
        stored = set((await conn.execute(sa.select(notes.c.ref))).scalars())
    assert stored == {"q0", "q1", "q3"}


async def test_a_statement_sent_to_the_driver_first_is_part_of_the_transaction(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            assert await _claim_refs(conn, ["lost"]) == [True]
            raise RuntimeError("request failed")
    assert await count(db, notes) == 0


async def test_outbox_rows_written_at_commit_in_emit_order(db: Database) -> None:
    emitter = Emitter(db, source="/test")
    async with db.transaction() as conn:
        first = await emitter.emit(conn, points_event("c1"), subject="s", correlation_id="k1")
        second = await emitter.emit(conn, points_event("c2"), subject="s", correlation_id="k2")
    async with db.engine.connect() as conn:
        ids = (await conn.execute(sa.select(tables.outbox.c.event_id).order_by(tables.outbox.c.id))).scalars().all()
    assert ids == [first.id, second.id]


async def test_events_of_a_rolled_back_savepoint_are_not_written(db: Database) -> None:
    emitter = Emitter(db, source="/test")
    async with db.transaction() as conn:
        kept = await emitter.emit(conn, points_event("c1"), subject="s", correlation_id="k1")
        with pytest.raises(RuntimeError):
            async with conn.begin_nested():
                await emitter.emit(conn, points_event("c2"), subject="s", correlation_id="k2")
                raise RuntimeError("handler failed")
    async with db.engine.connect() as conn:
        ids = (await conn.execute(sa.select(tables.outbox.c.event_id))).scalars().all()
    assert ids == [kept.id]


async def test_a_failed_transaction_leaves_nothing_deferred_on_the_connection(db: Database) -> None:
    emitter = Emitter(db, source="/test")
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await emitter.emit(conn, points_event("c1"), subject="s", correlation_id="lost")
            raise RuntimeError("request failed")
    # The same pooled connections, used without Database.transaction, insert at once.
    for _ in range(2):
        async with db.engine.begin() as conn:
            await emitter.emit(conn, points_event("c2"), subject="s", correlation_id="direct")
    assert await count(db, tables.outbox) == 2


def record(event: EventData, offset: int, envelope_id: str | None = None) -> ConsumerRecord:
    """A Kafka record of one event as the consumer receives it."""
    env = new_event(event, source="/test", subject="s", correlation_id="corr")
    if envelope_id:
        env = env.model_copy(update={"id": envelope_id})
    key, value, headers = to_kafka(env)
    return ConsumerRecord("redress.loyalty.v1", 0, offset, 0, 0, key, value, None, len(key), len(value), headers)


async def test_one_batch_claims_the_inbox_once_per_event(db: Database) -> None:
    handled: list[str] = []

    async def handler(ctx: HandlerContext, event: EventData) -> None:
        handled.append(ctx.envelope.id)
        await ctx.conn.execute(sa.insert(notes).values(ref=ctx.envelope.id[:40]))

    consumer = EventConsumer(
        service="gc-test", settings=ServiceSettings(), db=db, bus=None,  # type: ignore[arg-type]
        emitter=Emitter(db, source="/test"), handlers={PointsChanged.event_type: handler}, topics=[],
    )
    duplicate = str(uuid.uuid4())
    batch = [record(points_event(), 0, duplicate), record(points_event(), 1), record(points_event(), 2, duplicate)]
    await consumer.process(batch)
    assert len(handled) == 2  # the same event twice in one fetch is handled once
    assert handled[0] == duplicate
    # Redelivered: its first attempt fails at commit on the inbox's key and rolls back whole; the
    # second claims first and skips both events. No second effect in the database.
    await consumer.process(batch)
    assert await count(db, notes) == 2
    assert await count(db, tables.inbox) == 2


async def test_an_idle_pooled_connection_killed_by_the_server_is_replaced_on_checkout(database_url: str) -> None:
    engine = create_async_engine(database_url, pool_size=1, max_overflow=0)
    ping_idle_connections(engine, idle_seconds=0.0)
    try:
        async with engine.connect() as conn:
            pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
        killer = create_async_engine(database_url, poolclass=NullPool)
        async with killer.connect() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await killer.dispose()
        async with engine.connect() as conn:  # the dead connection is pinged and replaced, not handed out
            assert await conn.scalar(sa.text("SELECT pg_backend_pid()")) != pid
    finally:
        await engine.dispose()
