"""Transactional outbox: events are written with the state change, then relayed to Kafka.

``Emitter.emit`` adds an event row inside the caller's transaction. The ``OutboxRelay`` publishes
unsent rows in id order and marks them sent only after the broker acknowledged them. It wakes at
once after a local commit (fast path), on PostgreSQL ``NOTIFY`` from other replicas, and on a
polling interval as the fallback. One relay drains at a time per service (an advisory lock), so
one customer's events keep their order across replicas.
"""

import asyncio
import contextlib
import logging
import zlib
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bus import KafkaBus
from shared.db import NOTIFY_ORIGIN, Database, defer_insert, defer_notify, utcnow
from shared.envelope import Envelope, new_event, to_kafka_from_json
from shared.events import EventData
from shared.metrics import EVENTS_PUBLISHED, OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE
from shared.settings import ServiceSettings
from shared.tracing import spans_exported, traceparent_for, with_traceparent

log = logging.getLogger(__name__)


def notify_channel(schema: str | None) -> str:
    """The LISTEN/NOTIFY channel of one service's outbox."""
    return f"{schema or 'redress'}_outbox"


class Emitter:
    """Writes events into the outbox inside the caller's transaction."""

    def __init__(self, db: Database, source: str) -> None:
        self.db = db
        self.source = source

    async def emit(
        self,
        conn: AsyncConnection,
        data: EventData,
        *,
        subject: str | None,
        correlation_id: str,
        causation_id: str | None = None,
        traceparent: str | None = None,
    ) -> Envelope:
        """Record ``data`` as an event to publish when the transaction commits."""
        if traceparent is None:  # made before the envelope: no copy of it with the traceparent added
            traceparent = traceparent_for(correlation_id, data.event_type, causation_id=causation_id, subject=subject)
        env = new_event(
            data,
            source=self.source,
            subject=subject,
            correlation_id=correlation_id,
            causation_id=causation_id,
            traceparent=traceparent,
        )
        await self.emit_envelopes(conn, [env])
        return env

    async def emit_envelopes(self, conn: AsyncConnection, envelopes: list[Envelope]) -> None:
        """Record ready-made envelopes (one multi-row insert)."""
        if not envelopes:
            return
        now = utcnow()
        envelopes = [with_traceparent(env) for env in envelopes]  # joins the complaint's trace
        rows = [
            {
                "event_id": env.id,
                "event_type": env.type,
                "topic": _topic_of(env),
                "envelope": env.model_dump_json(),
                "created_at": now,
            }
            for env in envelopes
        ]
        # Inside Database.transaction the rows (and one NOTIFY) are written together just before commit.
        await defer_insert(conn, self.db.tables.outbox, rows)
        if self.db.is_postgres:
            await defer_notify(conn, notify_channel(self.db.schema))
        conn.info["outbox_dirty"] = True


def _topic_of(env: Envelope) -> str:
    from shared.events import EVENT_TYPES

    return str(EVENT_TYPES[env.type].topic)


class OutboxRelay:
    """Publishes outbox rows to Kafka; safe to run in every replica."""

    def __init__(self, db: Database, bus: KafkaBus, settings: ServiceSettings) -> None:
        self.db = db
        self.bus = bus
        self.settings = settings
        self._wake = asyncio.Event()
        self._stopping = False
        self._lock_key = zlib.crc32(notify_channel(db.schema).encode())
        outbox = db.tables.outbox
        # Built once: the relay runs these thousands of times; one array parameter, not one per id.
        self._unsent = (
            sa.select(outbox.c.id, outbox.c.topic, outbox.c.event_type, outbox.c.envelope)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
            .limit(sa.bindparam("limit"))
        )
        # SQLite only: PostgreSQL marks the rows in the claim itself.
        sent = outbox.c.id.in_(sa.bindparam("ids", expanding=True))
        self._mark_sent = sa.update(outbox).where(sent).values(published_at=sa.bindparam("now"))
        self._claim = self._claim_statement(outbox)
        db.on_commit(self.wake)

    def _claim_statement(self, outbox: sa.Table) -> sa.Update:
        """Take the relay lock, pick the oldest unsent rows and mark them sent: one round trip on PostgreSQL.

        The marks are undone by the rollback if the broker refuses the batch. The outer
        ``published_at IS NULL`` matters: the picking query's snapshot can predate the lock, so a row
        another relay published meanwhile is re-checked on its newest version and skipped.
        """
        key = sa.literal(self._lock_key, sa.BigInteger)
        locked = sa.select(sa.func.pg_try_advisory_xact_lock(key, type_=sa.Boolean))
        oldest = (
            sa.select(outbox.c.id)
            .where(outbox.c.published_at.is_(None), locked.scalar_subquery())
            .order_by(outbox.c.id)
            .limit(sa.bindparam("limit"))
        )
        # The picked ids go in as one array computed once. As ``id IN (subquery)``, statistics taken while
        # nothing was unsent (rows=1) made PostgreSQL re-run the picking for every unsent row: seconds
        # per claim once a backlog of thousands built up, just when the relay must catch up.
        picked = oldest.subquery()
        ids = sa.cast(sa.select(sa.func.array_agg(picked.c.id)).scalar_subquery(), ARRAY(sa.BigInteger))
        return (
            sa.update(outbox)
            .where(outbox.c.published_at.is_(None), outbox.c.id == sa.any_(ids))
            .values(published_at=sa.bindparam("now"))
            .returning(outbox.c.id, outbox.c.topic, outbox.c.event_type, outbox.c.envelope)
        )

    def wake(self) -> None:
        """Ask the relay to drain now (called after a commit that wrote events)."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the current batch and return from ``run``."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Drain, then wait for a wake-up or the polling interval; retry with backoff on errors."""
        listener = asyncio.create_task(self._listen()) if self.db.is_postgres else None
        backoff = 0.1
        try:
            while not self._stopping:
                try:
                    while await self.drain_once() == self.settings.outbox_batch:
                        pass
                    backoff = 0.1
                except Exception as exc:
                    log.warning("outbox relay failed, retrying in %.1fs: %s", backoff, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                await self._sleep_until_woken()
        finally:
            if listener:
                listener.cancel()

    async def _sleep_until_woken(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.settings.outbox_poll_seconds)
        self._wake.clear()

    async def drain_once(self) -> int:
        """Publish one batch of unsent events; returns how many were sent."""
        async with self.db.engine.begin() as conn:
            rows = await self._take_unsent(conn)
            if not rows:
                return 0
            if spans_exported():
                await self.bus.send_batch([(row.topic, Envelope.model_validate_json(row.envelope)) for row in rows])
            else:  # the stored JSON is sent as it is: no model rebuilt, no PRODUCER span nobody sees
                await self.bus.send_messages([(row.topic, *to_kafka_from_json(row.envelope)) for row in rows])
            if not self.db.is_postgres:
                await conn.execute(self._mark_sent, {"ids": [r.id for r in rows], "now": utcnow()})
        for row in rows:
            EVENTS_PUBLISHED.labels(type=row.event_type).inc()
        return len(rows)

    async def _take_unsent(self, conn: AsyncConnection) -> list[sa.Row[Any]]:
        """The oldest unsent rows in id order; on PostgreSQL already marked sent in this transaction."""
        limit = self.settings.outbox_batch
        if self.db.is_postgres:
            rows = (await conn.execute(self._claim, {"limit": limit, "now": utcnow()})).all()
            return sorted(rows, key=lambda row: row.id)
        return list((await conn.execute(self._unsent, {"limit": limit})).all())

    async def backlog(self) -> tuple[int, float]:
        """Unsent events and the age in seconds of the oldest; also sets the gauges."""
        outbox = self.db.tables.outbox
        async with self.db.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.min(outbox.c.created_at)).where(outbox.c.published_at.is_(None))
                )
            ).one()
        count, oldest = row[0], row[1]
        age = 0.0
        if oldest is not None:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=utcnow().tzinfo)
            age = (utcnow() - oldest).total_seconds()
        OUTBOX_BACKLOG.set(count)
        OUTBOX_OLDEST_AGE.set(age)
        return count, age

    async def purge_published(self, older_than: timedelta) -> int:
        """Delete published rows older than ``older_than`` (the broker holds them now)."""
        outbox = self.db.tables.outbox
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                sa.delete(outbox).where(
                    outbox.c.published_at.is_not(None), outbox.c.published_at < utcnow() - older_than
                )
            )
        return result.rowcount or 0

    def _on_notify(self, _conn: object, _pid: int, _channel: str, origin: str) -> None:
        # This process's own commits woke the relay already (``on_commit``): only others' count.
        if origin != NOTIFY_ORIGIN:
            self._wake.set()

    async def _listen(self) -> None:
        """Wake on NOTIFY from other replicas' commits (PostgreSQL only)."""
        channel = notify_channel(self.db.schema)
        while not self._stopping:
            try:
                async with self.db.engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver = raw.driver_connection
                    await driver.add_listener(channel, self._on_notify)
                    while not self._stopping:
                        await asyncio.sleep(5)
                        await conn.execute(sa.text("SELECT 1"))
                        await conn.commit()  # never sit "idle in transaction" between keep-alives
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("outbox listener reconnecting: %s", exc)
                await asyncio.sleep(1)
