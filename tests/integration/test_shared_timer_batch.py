"""The batched timer worker on a real PostgreSQL database: fires due timers once, isolates a failing one."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from shared.db import Database, add_delivery_tables, utcnow
from shared.events.loyalty import PointsChanged
from shared.outbox import Emitter
from shared.settings import ServiceSettings
from shared.timer_batch import BatchedTimerWorker
from shared.timers import TimerContext, schedule
from tests.support.schemas import fresh_schema

metadata = sa.MetaData()
tables = add_delivery_tables(metadata)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A Database on a fresh schema holding the delivery tables."""
    async with fresh_schema(database_url, metadata, tables, prefix="tb") as database:
        yield database


async def add_timers(db: Database, keys: list[str], due_in: timedelta) -> None:
    """Schedule one timer per key."""
    async with db.transaction() as conn:
        for key in keys:
            await schedule(conn, db, "sla", key, utcnow() + due_in, {"correlation_id": key})


async def timer_rows(db: Database) -> dict[str, sa.Row]:
    """Every timer by key."""
    async with db.engine.connect() as conn:
        return {r.key: r for r in (await conn.execute(sa.select(tables.timers))).all()}


async def test_due_timers_fire_once_with_their_events_and_future_ones_wait(db: Database) -> None:
    await add_timers(db, [f"due-{i}" for i in range(30)], timedelta(seconds=-1))
    await add_timers(db, ["later"], timedelta(hours=4))
    fired: list[str] = []

    async def handler(ctx: TimerContext) -> None:
        fired.append(ctx.key)
        await ctx.emit(PointsChanged(customer_id=ctx.key, entry_id=ctx.key, kind="earn", points=1, balance=1,
                                     reason="timer"), subject=ctx.key)

    worker = BatchedTimerWorker(db, Emitter(db, "/test"), {"sla": handler}, ServiceSettings())
    assert await worker.fire_due() == 30
    assert await worker.fire_due() == 0
    rows = await timer_rows(db)
    assert sorted(fired) == sorted(f"due-{i}" for i in range(30))
    assert all(rows[f"due-{i}"].fired_at is not None for i in range(30))
    assert rows["later"].fired_at is None
    async with db.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(tables.outbox)) == 30


async def test_a_failing_handler_fails_alone_and_keeps_its_error(db: Database) -> None:
    await add_timers(db, ["ok-1", "bad", "ok-2"], timedelta(seconds=-1))

    async def handler(ctx: TimerContext) -> None:
        if ctx.key == "bad":
            raise ValueError("no such case")

    worker = BatchedTimerWorker(db, Emitter(db, "/test"), {"sla": handler}, ServiceSettings())
    await worker.fire_due()
    rows = await timer_rows(db)
    assert rows["ok-1"].fired_at is not None and rows["ok-2"].fired_at is not None
    assert rows["bad"].fired_at is None
    assert rows["bad"].attempts == 1
    assert "no such case" in rows["bad"].last_error
