"""The consumer's inbox: written with a fetch's effects, and claimed first only when an event was seen before.

A fetch of new events costs no round trip for its inbox before the handlers run; a fetch that holds
a redelivered event fails at its commit on the inbox's key, rolls back whole and is handled again
claiming first, so every event still has exactly one effect.
"""

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiokafka import ConsumerRecord

from shared.bus import KafkaBus
from shared.consumer import BatchableHandler, EventConsumer, Handler, HandlerContext
from shared.db import Database, add_delivery_tables
from shared.envelope import new_event, to_kafka
from shared.events import EventData
from shared.events.loyalty import PointsChanged
from shared.outbox import Emitter
from shared.settings import ServiceSettings
from shared.topics import Topic
from tests.support.schemas import capture_statements, fresh_schema, sqlite_file

metadata = sa.MetaData()
tables = add_delivery_tables(metadata)
# One row per handling, keyed by nothing of the event's: a second handling would show as a second row.
effects = sa.Table(
    "effects", metadata,
    sa.Column("n", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_id", sa.String(64), nullable=False),
)


@pytest.fixture
async def pg_db(database_url: str) -> AsyncIterator[Database]:
    """The tables on a fresh PostgreSQL schema."""
    async with fresh_schema(database_url, metadata, tables, prefix="ib") as database:
        yield database


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """The same tables in a SQLite file."""
    async with sqlite_file(tmp_path / "inbox.db", metadata, tables) as database:
        yield database


@pytest.fixture
async def bus() -> AsyncIterator[KafkaBus]:
    """A producer that is never started: nothing here is dead-lettered."""
    kafka = KafkaBus(ServiceSettings(kafka_bootstrap_servers="127.0.0.1:9"), client_id="inbox-test")
    yield kafka
    await kafka.close()


def points(offset: int) -> tuple[ConsumerRecord, str]:
    """A points event as the broker hands it over, and its entry id."""
    event = PointsChanged(customer_id=f"cust-{offset}", entry_id=f"entry-{uuid.uuid4().hex[:12]}", kind="earn",
                          points=10, balance=10, reason="test")
    env = new_event(event, source="/test", subject=event.customer_id, correlation_id=str(uuid.uuid4()))
    key, value, headers = to_kafka(env)
    record = ConsumerRecord(str(Topic.LOYALTY), 0, offset, 0, 0, key, value, None, len(key), len(value), headers)
    return record, event.entry_id


def consumer(db: Database, bus: KafkaBus, batch_form: bool) -> EventConsumer:
    """A consumer writing one effects row per points event it handles, in its batch form or one by one."""

    async def many(events: list[tuple[HandlerContext, EventData]]) -> None:
        rows = [{"entry_id": event.entry_id} for _, event in events]  # type: ignore[attr-defined]
        await events[0][0].conn.execute(sa.insert(effects), rows)

    async def one(ctx: HandlerContext, event: EventData) -> None:
        await many([(ctx, event)])

    handler: Handler = BatchableHandler(one=one, many=many) if batch_form else one
    return EventConsumer(
        service="inbox-test", settings=ServiceSettings(), db=db, bus=bus, emitter=Emitter(db, source="/test"),
        topics=[], handlers={PointsChanged.event_type: handler},
    )


async def handled(db: Database) -> list[str]:
    """The entry ids of every handling, sorted."""
    async with db.engine.connect() as conn:
        return sorted(await conn.scalars(sa.select(effects.c.entry_id)))


async def inbox_count(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(db.tables.inbox)) or 0)



@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
@pytest.mark.parametrize("batch_form", [True, False], ids=["batch form", "one by one"])
async def test_a_redelivered_event_has_one_effect_and_the_new_ones_of_its_fetch_are_handled(
    backend: str, batch_form: bool, pg_db: Database, sqlite_db: Database, bus: KafkaBus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = pg_db if backend == "postgresql" else sqlite_db
    subject = consumer(db, bus, batch_form)
    (a, a_id), (b, b_id), (c, c_id) = points(0), points(1), points(2)
    seen = capture_statements(db)
    await subject.process([a, b])
    # New events: the effects were written before anything touched the inbox (it went in at commit).
    first_inbox = next(n for n, text in enumerate(seen) if "inbox" in text)
    assert any("effects" in text for text in seen[:first_inbox])
    with caplog.at_level(logging.INFO, logger="shared.consumer"):
        await subject.process([b, c, c])  # b redelivered, c new and twice in the fetch
    assert await handled(db) == sorted([a_id, b_id, c_id])
    assert await inbox_count(db) == 3
    assert "claiming first" in caplog.text


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_a_fetch_seen_whole_before_changes_nothing(
    backend: str, pg_db: Database, sqlite_db: Database, bus: KafkaBus
) -> None:
    db = pg_db if backend == "postgresql" else sqlite_db
    subject = consumer(db, bus, batch_form=True)
    fetch = [points(n)[0] for n in range(3)]
    await subject.process(fetch)
    before = await handled(db)
    await subject.process(fetch)
    assert await handled(db) == before
    assert len(before) == 3
    assert await inbox_count(db) == 3
