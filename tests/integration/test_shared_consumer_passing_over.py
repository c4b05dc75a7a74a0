"""What a consumer passes over: known types another service handles (unread), events its handler has no concern with.

A malformed message of a type nobody handles is still dead-lettered; a known type that another service
handles is that service's to judge, so this one neither reads nor dead-letters it.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiokafka import ConsumerRecord

from shared.bus import KafkaBus
from shared.consumer import BatchableHandler, EventConsumer, HandlerContext
from shared.db import Database, add_delivery_tables
from shared.envelope import new_event, to_kafka
from shared.events import EventData
from shared.events.loyalty import PointsChanged, TierChanged
from shared.outbox import Emitter
from shared.settings import ServiceSettings
from shared.topics import Topic
from tests.support.events import EventTap
from tests.support.schemas import sqlite_file

metadata = sa.MetaData()
tables = add_delivery_tables(metadata)
TOPIC = str(Topic.LOYALTY)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """The delivery tables in a SQLite file."""
    async with sqlite_file(tmp_path / "passing.db", metadata, tables) as database:
        yield database


@pytest.fixture
async def bus(broker_address: str) -> AsyncIterator[KafkaBus]:
    """A real producer on the embedded broker, for the dead letters."""
    kafka = KafkaBus(ServiceSettings(kafka_bootstrap_servers=broker_address), client_id="passing-over-test")
    yield kafka
    await kafka.close()


def record(offset: int, key: str, value: bytes, event_type: str) -> ConsumerRecord:
    """A message as the broker hands it over, naming ``event_type`` in its ``ce_type`` header."""
    headers = [("ce_type", event_type.encode()), ("ce_id", str(uuid.uuid4()).encode())]
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, key.encode(), value, None, len(key), len(value), headers)


def points_record(offset: int, points: int) -> tuple[ConsumerRecord, str]:
    """A valid points event and its id."""
    event = PointsChanged(customer_id=f"cust-{offset}", entry_id=str(uuid.uuid4()), kind="earn", points=points,
                          balance=points, reason="test")
    env = new_event(event, source="/test", subject=event.customer_id, correlation_id=str(uuid.uuid4()))
    key, value, headers = to_kafka(env)
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, key, value, None, len(key), len(value), headers), env.id


def points_consumer(db: Database, bus: KafkaBus, handled: list[int]) -> EventConsumer:
    """A consumer of points events only, concerned with grants of more than one point."""

    async def many(events: list[tuple[HandlerContext, EventData]]) -> None:
        handled.extend(event.points for _, event in events)  # type: ignore[attr-defined]

    async def one(ctx: HandlerContext, event: EventData) -> None:
        await many([(ctx, event)])

    def concerns(event: EventData) -> bool:
        return isinstance(event, PointsChanged) and event.points > 1

    return EventConsumer(
        service="passing-test", settings=ServiceSettings(), db=db, bus=bus, emitter=Emitter(db, source="/test"),
        topics=[], handlers={PointsChanged.event_type: BatchableHandler(one=one, many=many, concerns=concerns)},
    )


async def inbox_ids(db: Database) -> set[str]:
    """The event ids the consumer recorded."""
    async with db.engine.connect() as conn:
        return set(await conn.scalars(sa.select(db.tables.inbox.c.event_id)))


async def dead_letter_keys(tap: EventTap, until: str, timeout: float = 10.0) -> set[str]:
    """Keys of the dead letters seen once ``until`` arrived, and a moment more (other partitions may lag)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while until not in {item.key for item in tap.items} and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    return {item.key for item in tap.items if item.key}


async def test_a_known_type_another_service_handles_is_neither_read_nor_dead_lettered(
    db: Database, bus: KafkaBus, broker_address: str
) -> None:
    run = uuid.uuid4().hex[:8]
    handled: list[int] = []
    granted, granted_id = points_record(2, 5)
    async with EventTap(broker_address, [str(Topic.DEAD_LETTER)], from_beginning=False) as tap:
        await points_consumer(db, bus, handled).process([
            record(0, f"theirs-{run}", b"\xff not json", TierChanged.event_type),  # loyalty's own to judge
            record(1, f"nobodys-{run}", b"\xff not json", "nonsense.v1"),  # no service's type: dead-lettered
            granted,
        ])
        keys = await dead_letter_keys(tap, until=f"nobodys-{run}")
    assert f"nobodys-{run}" in keys
    assert f"theirs-{run}" not in keys
    assert handled == [5]
    assert await inbox_ids(db) == {granted_id}


async def test_events_the_handler_is_not_concerned_with_leave_no_inbox_row(db: Database, bus: KafkaBus) -> None:
    handled: list[int] = []
    records = [points_record(offset, points) for offset, points in enumerate([1, 5, 1, 7])]
    await points_consumer(db, bus, handled).process([r for r, _ in records])
    assert handled == [5, 7]
    assert await inbox_ids(db) == {records[1][1], records[3][1]}
