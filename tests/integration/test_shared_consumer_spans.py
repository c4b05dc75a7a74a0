"""The CONSUMER span of a batch: one span linked to each event's producer, made only when spans are exported."""

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiokafka import ConsumerRecord
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared import tracing
from shared.consumer import BatchableHandler, EventConsumer, HandlerContext
from shared.db import Database, add_delivery_tables
from shared.envelope import new_event, to_kafka
from shared.events import EventData
from shared.events.loyalty import PointsChanged
from shared.outbox import Emitter
from shared.settings import ServiceSettings
from shared.tracing import add_span_processor, parse_traceparent, with_traceparent
from tests.support.schemas import sqlite_file

metadata = sa.MetaData()
tables = add_delivery_tables(metadata)
TOPIC = "redress.loyalty.v1"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """The delivery tables in a SQLite file."""
    async with sqlite_file(tmp_path / "spans.db", metadata, tables) as database:
        yield database


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Spans of this process go to memory; whether they count as exported is restored afterwards."""
    monkeypatch.setattr(tracing, "_exporting", tracing.spans_exported())
    exporter = InMemorySpanExporter()
    add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def points_record(offset: int) -> tuple[ConsumerRecord, str]:
    """A points event of its own complaint, with the traceparent its producer gave it."""
    event = PointsChanged(customer_id=f"cust-{offset}", entry_id=str(uuid.uuid4()), kind="earn", points=1,
                          balance=1, reason="test")
    correlation = str(uuid.uuid4())
    env = with_traceparent(new_event(event, source="/test", subject=correlation, correlation_id=correlation))
    key, value, headers = to_kafka(env)
    record = ConsumerRecord(TOPIC, 0, offset, 0, 0, key, value, None, len(key), len(value), headers)
    assert env.traceparent is not None
    return record, env.traceparent


def batch_consumer(db: Database, handled: list[int]) -> EventConsumer:
    """A consumer whose points handler has a batch form that notes each call's size."""

    async def many(events: list[tuple[HandlerContext, EventData]]) -> None:
        handled.append(len(events))

    async def one(ctx: HandlerContext, event: EventData) -> None:
        await many([(ctx, event)])

    return EventConsumer(
        service="spans-test", settings=ServiceSettings(), db=db, bus=None,  # type: ignore[arg-type]
        emitter=Emitter(db, source="/test"), topics=[],
        handlers={PointsChanged.event_type: BatchableHandler(one=one, many=many)},
    )


def consumer_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The finished CONSUMER spans of the points topic."""
    return [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER and s.name == f"{TOPIC} process"]


async def test_a_batch_has_one_consumer_span_linked_to_every_producer(
    db: Database, spans: InMemorySpanExporter
) -> None:
    fetched = [points_record(offset) for offset in range(3)]
    handled: list[int] = []
    await batch_consumer(db, handled).process([record for record, _ in fetched])
    assert handled == [3]
    [span] = consumer_spans(spans)
    assert span.attributes["messaging.batch.message_count"] == 3
    producers = [parse_traceparent(traceparent) for _, traceparent in fetched]
    assert [link.context.span_id for link in span.links] == [p.span_id for p in producers if p is not None]


async def test_without_an_exporter_a_batch_makes_no_span(
    db: Database, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracing, "_exporting", False)
    handled: list[int] = []
    consumer = batch_consumer(db, handled)
    await consumer.process([points_record(offset)[0] for offset in range(3)])
    assert handled == [3]
    assert consumer_spans(spans) == []
    # A single event keeps its own span, child of its producer's: it is a hop of the complaint's trace.
    record, traceparent = points_record(9)
    await consumer.process([record])
    [span] = consumer_spans(spans)
    producer = parse_traceparent(traceparent)
    assert producer is not None and span.parent is not None and span.parent.span_id == producer.span_id
