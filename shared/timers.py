"""Durable timers (SLA deadlines, offer expiry, care follow-ups) stored in the database.

A timer is a row (kind, key, due_at, payload). ``TimerWorker`` claims due rows with
``FOR UPDATE SKIP LOCKED``, so any number of replicas fire each timer exactly once; the handler
runs in the same transaction that marks the timer fired. Timers survive restarts because they
are rows. A handler that keeps failing is given up after ``max_attempts`` with its error kept.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database, insert_ignore, utcnow
from shared.envelope import Envelope
from shared.events import EventData
from shared.metrics import TIMER_LATENESS, TIMERS_DUE, TIMERS_FIRED
from shared.outbox import Emitter
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass
class TimerContext:
    """What a timer handler gets: the open transaction, the timer, and an emitter."""

    conn: AsyncConnection
    kind: str
    key: str
    due_at: datetime
    payload: dict[str, Any]
    emitter: Emitter

    async def emit(self, data: EventData, *, subject: str | None, causation_id: str | None = None) -> Envelope:
        """Emit an event in this transaction; the correlation id comes from the timer's payload."""
        return await self.emitter.emit(
            self.conn,
            data,
            subject=subject,
            correlation_id=str(self.payload.get("correlation_id") or self.key),
            causation_id=causation_id or self.payload.get("causation_id"),
        )


TimerHandler = Callable[[TimerContext], Awaitable[None]]


async def schedule(
    conn: AsyncConnection, db: Database, kind: str, key: str, due_at: datetime, payload: dict[str, Any]
) -> bool:
    """Create a timer unless (kind, key) exists; True when created."""
    return await insert_ignore(
        conn,
        db.tables.timers,
        {"kind": kind, "key": key, "due_at": due_at, "payload": payload, "created_at": utcnow(), "attempts": 0},
    )


async def reschedule(conn: AsyncConnection, db: Database, kind: str, key: str, due_at: datetime) -> bool:
    """Move a pending timer to a new due time; True when one was pending."""
    timers = db.tables.timers
    result = await conn.execute(
        sa.update(timers)
        .where(timers.c.kind == kind, timers.c.key == key, timers.c.fired_at.is_(None), timers.c.cancelled_at.is_(None))
        .values(due_at=due_at)
    )
    return bool(result.rowcount)


async def cancel(conn: AsyncConnection, db: Database, kind: str, key: str) -> bool:
    """Cancel a pending timer; True when one was pending."""
    timers = db.tables.timers
    result = await conn.execute(
        sa.update(timers)
        .where(timers.c.kind == kind, timers.c.key == key, timers.c.fired_at.is_(None), timers.c.cancelled_at.is_(None))
        .values(cancelled_at=utcnow())
    )
    return bool(result.rowcount)


class TimerWorker:
    """Fires due timers; run one in every replica."""

    def __init__(
        self,
        db: Database,
        emitter: Emitter,
        handlers: dict[str, TimerHandler],
        settings: ServiceSettings,
        max_attempts: int = 5,
    ) -> None:
        self.db = db
        self.emitter = emitter
        self.handlers = handlers
        self.settings = settings
        self.max_attempts = max_attempts
        self._stopping = False

    def stop(self) -> None:
        """Return from ``run`` after the current batch."""
        self._stopping = True

    async def run(self) -> None:
        """Fire due timers, polling at ``timer_poll_seconds`` when none are due."""
        while not self._stopping:
            try:
                fired = await self.fire_due()
            except Exception as exc:
                log.warning("timer worker failed, retrying: %s", exc)
                fired = 0
            if fired < self.settings.timer_batch:
                await asyncio.sleep(self.settings.timer_poll_seconds)

    async def fire_due(self) -> int:
        """Claim and fire one batch of due timers; returns how many were claimed."""
        async with self.db.transaction() as conn:
            rows = await self.claim_due(conn)
            for row in rows:
                await self._fire(conn, row)
        return len(rows)

    async def claim_due(self, conn: AsyncConnection) -> list[sa.Row[Any]]:
        """Lock one batch of due timers of this worker's kinds, skipping those other replicas hold."""
        timers = self.db.tables.timers
        rows = (
            await conn.execute(
                sa.select(timers)
                .where(
                    timers.c.kind.in_(list(self.handlers)),
                    timers.c.fired_at.is_(None),
                    timers.c.cancelled_at.is_(None),
                    timers.c.due_at <= utcnow(),
                )
                .order_by(timers.c.due_at, timers.c.id)
                .limit(self.settings.timer_batch)
                .with_for_update(skip_locked=True)
            )
        ).all()
        TIMERS_DUE.set(len(rows))
        return list(rows)

    async def _fire(self, conn: AsyncConnection, row: sa.Row[Any]) -> None:
        timers = self.db.tables.timers
        ctx = TimerContext(conn, row.kind, row.key, row.due_at, dict(row.payload), self.emitter)
        try:
            async with conn.begin_nested():
                await self.handlers[row.kind](ctx)
        except Exception as exc:
            attempts = row.attempts + 1
            given_up = attempts >= self.max_attempts
            log.error("timer %s/%s failed (attempt %d): %r", row.kind, row.key, attempts, exc)
            await conn.execute(
                sa.update(timers)
                .where(timers.c.id == row.id)
                .values(attempts=attempts, last_error=repr(exc)[:2000], fired_at=utcnow() if given_up else None)
            )
            return
        fired_at = utcnow()
        await conn.execute(sa.update(timers).where(timers.c.id == row.id).values(fired_at=fired_at))
        TIMERS_FIRED.labels(kind=row.kind).inc()
        TIMER_LATENESS.labels(kind=row.kind).observe(max(0.0, (fired_at - row.due_at).total_seconds()))
