"""Idempotent event consumers: inbox in the effect's transaction, offsets committed after it.

A fetch's inbox rows are written with its effects, at commit; redelivery is rare, and an event
handled before makes that commit fail on the inbox's key, so the fetch is rolled back and handled
again claiming its inbox rows first, which skips it. Handlers must therefore only write through the
transaction they are given: an attempt may be rolled back and run again.

Each service runs one consumer group (``redress-<service>``). A fetched batch of one partition is
handled in one transaction (fast path); if anything in it fails, its events are handled one by one
with bounded retries and backoff, and an event that still fails goes to the dead-letter topic with
the error, so the consumer keeps going. Infrastructure errors (database or broker unreachable) are
not the event's fault: they are retried until the infrastructure is back, never dead-lettered.

On PostgreSQL, a fetch's partitions are split into up to ``kafka_partition_concurrency`` groups
handled in concurrent transactions, so one group's Python work overlaps another's wait on the
database; a partition is never split, so per-key order holds (a key always maps to one partition).

A handler may also have a batch form (``BatchableHandler``): on the fast path, each run of
consecutive new events whose handlers share that form goes to it in one call, in fetch order, so it
can use multi-row statements. The one-by-one fallback always uses the per-event form.

An event of a known type the service does not handle is passed over by its ``ce_type`` header,
without parsing it; a ``BatchableHandler`` may also pass over events of its types that cannot
concern the service (``concerns``), which are then neither recorded in the inbox nor handled. A
million-customer incident's two million events reach every service that follows their topics.
"""

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bus import KafkaBus, assignors
from shared.db import Database, defer_insert, flush_deferred_rows, insert_ignore, insert_rows, utcnow
from shared.envelope import Envelope, MalformedEvent, from_kafka, header_type
from shared.events import EVENT_TYPES, EventData
from shared.logs import correlation_id_var
from shared.metrics import CONSUMER_LAG, DEAD_LETTERED, EVENTS_CONSUMED, HANDLER_LATENCY, INBOX_DUPLICATES
from shared.outbox import Emitter
from shared.settings import ServiceSettings
from shared.topics import Topic
from shared.tracing import consuming, parse_traceparent, spans_exported, tracer
from shared.transient import is_transient

log = logging.getLogger(__name__)


@dataclass
class HandlerContext:
    """What a handler gets: the open transaction and a way to emit events caused by this one."""

    conn: AsyncConnection
    envelope: Envelope
    emitter: Emitter

    async def emit(self, data: EventData, *, subject: str | None) -> Envelope:
        """Emit an event in this transaction, carrying the correlation and causation ids."""
        return await self.emitter.emit(
            self.conn,
            data,
            subject=subject,
            correlation_id=self.envelope.correlationid,
            causation_id=self.envelope.id,
        )


Handler = Callable[[HandlerContext, EventData], Awaitable[None]]
# Events of one run, in fetch order, each with its own context (all sharing one transaction).
BatchHandler = Callable[[list[tuple[HandlerContext, EventData]]], Awaitable[None]]


@dataclass(frozen=True)
class BatchableHandler:
    """A handler with a per-event form and a batch form that has exactly the same effects.

    Called like a plain ``Handler`` (the per-event form). The consumer's fast path hands each run of
    consecutive new events with the same batch form to ``many`` in one call; ``many`` must leave the
    same state and emit the same events as ``one`` applied to each event in order.
    """

    one: Handler
    many: BatchHandler
    # False for an event the service has nothing to do with: it is neither recorded in the inbox nor handled.
    concerns: Callable[[EventData], bool] | None = None

    async def __call__(self, ctx: HandlerContext, event: EventData) -> None:
        """Handle one event."""
        await self.one(ctx, event)


@dataclass
class _Item:
    record: ConsumerRecord
    envelope: Envelope | None
    payload: EventData | None
    error: str | None


def partition_groups(batches: dict[TopicPartition, list[ConsumerRecord]], width: int) -> list[list[ConsumerRecord]]:
    """Split a fetch into at most ``width`` groups of whole partitions, balanced by record count.

    Each partition's records stay together and in order; the largest partitions are placed first,
    each on the group holding the fewest records so far.
    """
    parts = sorted(batches.values(), key=len, reverse=True)
    groups: list[list[ConsumerRecord]] = [[] for _ in range(max(1, min(width, len(parts))))]
    for records in parts:
        min(groups, key=len).extend(records)
    return [group for group in groups if group]


class EventConsumer:
    """Consumes the given topics for one service and dispatches events to handlers by type."""

    def __init__(
        self,
        *,
        service: str,
        settings: ServiceSettings,
        db: Database,
        bus: KafkaBus,
        emitter: Emitter,
        handlers: dict[str, Handler],
        topics: list[str],
    ) -> None:
        self.service = service
        self.settings = settings
        self.db = db
        self.bus = bus
        self.emitter = emitter
        self.handlers = handlers
        self.topics = topics
        self._stopping = False
        self.consumer: AIOKafkaConsumer | None = None

    @property
    def group_id(self) -> str:
        """The consumer group shared by every replica of this service."""
        return f"redress-{self.service}"

    def stop(self) -> None:
        """Finish and commit the batch in hand, then leave the group."""
        self._stopping = True

    async def run(self) -> None:
        """Consume until stopped, reconnecting to the broker when it goes away."""
        while not self._stopping:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer %s restarting after error: %s", self.group_id, exc)
                await asyncio.sleep(1)

    async def _consume(self) -> None:
        self.consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=self.group_id,
            client_id=f"{self.group_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            max_poll_records=self.settings.kafka_max_batch,
            partition_assignment_strategy=assignors(self.settings.kafka_assignor_delay_ms),
            metadata_max_age_ms=5_000,
        )
        await self.consumer.start()
        try:
            while not self._stopping:
                batches = await self.consumer.getmany(timeout_ms=500, max_records=self.settings.kafka_max_batch)
                if not batches:
                    continue
                await self.process_fetch(batches)
                offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
                await self._commit(offsets)
        finally:
            await self.consumer.stop()

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit after the effects are stored. After a rebalance the commit may be refused; that is
        harmless (the new owner redelivers and the inbox skips what was done), so stay in the group."""
        assert self.consumer is not None
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as exc:
            log.info("offset commit skipped after a rebalance: %s", type(exc).__name__)
            return
        for tp, next_offset in offsets.items():
            self._record_lag(tp, next_offset)

    def _record_lag(self, tp: TopicPartition, next_offset: int) -> None:
        end = self.consumer.highwater(tp) if self.consumer else None
        if end is not None:
            CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, end - next_offset))

    async def process_fetch(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Handle one fetch: its partitions in up to ``kafka_partition_concurrency`` concurrent groups.

        Each group is one transaction (with its own one-by-one fallback), so a fetch costs a database
        commit per group, not per partition. SQLite has one writer at a time: one group there.
        """
        width = self.settings.kafka_partition_concurrency if self.db.is_postgres else 1
        groups = partition_groups(batches, width)
        if len(groups) == 1:
            await self.process(groups[0])
            return
        async with asyncio.TaskGroup() as tasks:
            for group in groups:
                tasks.create_task(self.process(group))

    async def process(self, records: list[ConsumerRecord]) -> None:
        """Handle fetched records: all in one transaction, or one by one after a failure."""
        items = [self._decode(r) for r in records]
        for item in items:
            if item.error:
                await self._dead_letter(item, item.error)
        todo = [i for i in items if i.payload is not None]
        if not todo:
            return
        try:
            await self._handle_in_one_transaction(todo)
        except Exception as exc:
            if is_transient(exc):
                await self._retry_until_available(todo)
                return
            log.info("batch of %d failed (%s); handling one by one", len(todo), exc)
            for item in todo:
                await self._handle_with_retries(item)

    def _decode(self, record: ConsumerRecord) -> _Item:
        named = header_type(record.headers)
        if named in EVENT_TYPES and named not in self.handlers:
            # A known type another service handles (and dead-letters if it is malformed): not even read.
            return _Item(record, None, None, None)
        try:
            env = from_kafka(record.key, record.value, record.headers)
        except MalformedEvent as exc:
            return _Item(record, None, None, str(exc))
        handler = self.handlers.get(env.type)
        if handler is None:
            return _Item(record, env, None, None)
        try:
            payload = env.payload()
        except MalformedEvent as exc:
            return _Item(record, env, None, str(exc))
        if isinstance(handler, BatchableHandler) and handler.concerns and not handler.concerns(payload):
            return _Item(record, env, None, None)
        return _Item(record, env, payload, None)

    async def _handle_in_one_transaction(self, items: list[_Item]) -> None:
        """The fetch's effects and inbox rows in one transaction.

        Redelivery is rare, so the inbox rows go in with the effects, at commit, and the database's
        key on them is the check: an event handled before makes the commit fail, the transaction
        rolls back whole, and the fetch is handled again claiming its inbox rows first (one more
        round trip), which skips what was done. A round trip fewer per fetch otherwise.
        """
        try:
            await self._handle_claiming(items, self._record_at_commit)
            return
        except sa.exc.IntegrityError as exc:
            log.info("a fetch of %d met a key already taken (%s); handling it again, claiming first",
                     len(items), type(exc.orig).__name__ if exc.orig else "IntegrityError")
        await self._handle_claiming(items, self._claim_all)

    async def _handle_claiming(
        self, items: list[_Item], claim: Callable[[AsyncConnection, list[_Item]], Awaitable[set[str]]]
    ) -> None:
        async with self.db.transaction() as conn:
            claimed = await claim(conn, items)
            # Consecutive events with the same batch form go together; the order of the fetch is kept.
            for n, (many, run) in enumerate(itertools.groupby(items, key=self._batch_form)):
                if n:  # what earlier handlers deferred is there for this one to read
                    await flush_deferred_rows(conn)
                if many is None:
                    for item in run:
                        await self._handle(conn, item, claimed)
                else:
                    await self._handle_run(conn, many, list(run), claimed)

    def _batch_form(self, item: _Item) -> BatchHandler | None:
        assert item.envelope is not None
        handler = self.handlers[item.envelope.type]
        return handler.many if isinstance(handler, BatchableHandler) else None

    async def _handle_run(
        self, conn: AsyncConnection, many: BatchHandler, run: list[_Item], claimed: set[str]
    ) -> None:
        """Hand the run's new events to the batch form in one call (duplicates skipped as in ``_handle``)."""
        fresh: list[_Item] = []
        events: list[tuple[HandlerContext, EventData]] = []
        for item in run:
            env, payload = item.envelope, item.payload
            assert env is not None and payload is not None
            if env.id not in claimed:
                INBOX_DUPLICATES.labels(type=env.type).inc()
                continue
            claimed.discard(env.id)  # the same event twice in one batch has one effect
            fresh.append(item)
            events.append((HandlerContext(conn, env, self.emitter), payload))
        if not events:
            return
        started = time.perf_counter()
        with self._consuming_all(fresh):
            await many(events)
        share = (time.perf_counter() - started) / len(events)
        for ctx, _ in events:
            HANDLER_LATENCY.labels(type=ctx.envelope.type).observe(share)
            EVENTS_CONSUMED.labels(type=ctx.envelope.type).inc()

    @contextlib.contextmanager
    def _consuming_all(self, items: list[_Item]) -> Iterator[None]:
        """The CONSUMER span of a run: the event's own (child of its producer's) for a single event;
        for several, one span linked to every producer's span (OpenTelemetry's batch convention),
        since a span per event would cost as much as the grants themselves. A batch's span joins no
        complaint's trace, so when no span is exported it is not made at all: reading every event's
        ``traceparent`` for its links cost 6% of loyalty's CPU in an incident."""
        first = items[0]
        assert first.envelope is not None
        if len(items) == 1:
            with consuming(first.envelope, first.record.topic, self.group_id):
                yield
            return
        if not spans_exported():
            yield
            return
        links = [Link(ctx) for item in items
                 if item.envelope is not None and (ctx := parse_traceparent(item.envelope.traceparent)) is not None]
        span = tracer().start_span(
            f"{first.record.topic} process",
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": first.record.topic,
                "messaging.consumer.group.name": self.group_id,
                "messaging.batch.message_count": len(items),
                "cloudevents.event_type": first.envelope.type,
            },
        )
        with trace.use_span(span, end_on_exit=True, record_exception=True, set_status_on_exception=True):
            yield

    async def _claim_all(self, conn: AsyncConnection, items: list[_Item]) -> set[str]:
        """Record every event of the batch in the inbox with one statement; the ids this call claimed."""
        inbox = self.db.tables.inbox
        rows = self._inbox_rows(items)
        claimed = await insert_rows(conn, inbox, rows, skip_conflicts=True, returning=[inbox.c.event_id])
        return {row.event_id for row in claimed}

    async def _record_at_commit(self, conn: AsyncConnection, items: list[_Item]) -> set[str]:
        """Every event of the batch taken as new, its inbox row written with the effects (a key already
        there fails the transaction: see ``_handle_in_one_transaction``); the ids, each once."""
        rows = self._inbox_rows(items)
        await defer_insert(conn, self.db.tables.inbox, rows)
        return {str(row["event_id"]) for row in rows}

    def _inbox_rows(self, items: list[_Item]) -> list[dict[str, object]]:
        """One inbox row per event id of the batch (the same event twice in it is one row)."""
        now = utcnow()
        rows: dict[str, dict[str, object]] = {}
        for item in items:
            env = item.envelope
            assert env is not None
            rows.setdefault(env.id, {"consumer": self.group_id, "event_id": env.id, "event_type": env.type,
                                     "processed_at": now})
        return list(rows.values())

    async def _handle(self, conn: AsyncConnection, item: _Item, claimed: set[str] | None = None) -> None:
        env, payload = item.envelope, item.payload
        assert env is not None and payload is not None
        if claimed is None:
            is_new = await insert_ignore(
                conn,
                self.db.tables.inbox,
                {"consumer": self.group_id, "event_id": env.id, "event_type": env.type, "processed_at": utcnow()},
            )
        else:
            is_new = env.id in claimed
            claimed.discard(env.id)  # the same event twice in one batch has one effect
        if not is_new:
            INBOX_DUPLICATES.labels(type=env.type).inc()
            return
        token = correlation_id_var.set(env.correlationid)
        started = time.perf_counter()
        try:
            with consuming(env, item.record.topic, self.group_id):  # CONSUMER span, child of the producer's
                await self.handlers[env.type](HandlerContext(conn, env, self.emitter), payload)
        finally:
            correlation_id_var.reset(token)
        HANDLER_LATENCY.labels(type=env.type).observe(time.perf_counter() - started)
        EVENTS_CONSUMED.labels(type=env.type).inc()

    async def _handle_with_retries(self, item: _Item) -> None:
        backoff = self.settings.consumer_retry_backoff_ms / 1000
        attempt = 0
        while True:
            try:
                async with self.db.transaction() as conn:
                    await self._handle(conn, item)
                return
            except Exception as exc:
                if is_transient(exc):
                    log.warning("infrastructure unavailable, retrying: %s", exc)
                    await asyncio.sleep(min(backoff * 2**attempt, 5.0))
                    attempt = min(attempt + 1, 6)
                    continue
                if attempt >= self.settings.consumer_max_retries:
                    log.error("event %s failed %d times: %r", item.envelope and item.envelope.id, attempt + 1, exc)
                    await self._dead_letter(item, f"{type(exc).__name__}: {exc}")
                    return
                await asyncio.sleep(backoff * 2**attempt)
                attempt += 1

    async def _retry_until_available(self, items: list[_Item]) -> None:
        for item in items:
            await self._handle_with_retries(item)

    async def _dead_letter(self, item: _Item, error: str) -> None:
        record = item.record
        headers = [
            *(record.headers or []),
            ("dlq_error", error[:4000].encode()),
            ("dlq_consumer", self.group_id.encode()),
            ("dlq_source_topic", record.topic.encode()),
            ("dlq_source_partition", str(record.partition).encode()),
            ("dlq_source_offset", str(record.offset).encode()),
            ("dlq_at", utcnow().isoformat().encode()),
        ]
        while True:
            try:
                await self.bus.send_raw(Topic.DEAD_LETTER, record.key, record.value, headers)
                break
            except Exception as exc:
                log.warning("dead-letter publish failed, retrying: %s", exc)
                await asyncio.sleep(1)
        DEAD_LETTERED.labels(type=item.envelope.type if item.envelope else "malformed").inc()
        log.error("dead-lettered %s from %s[%d]@%d: %s", item.envelope and item.envelope.type,
                  record.topic, record.partition, record.offset, error)
