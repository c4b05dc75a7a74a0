"""Prometheus metrics every service exposes on /metrics."""

import asyncio
import contextlib
from typing import TYPE_CHECKING

import sqlalchemy as sa
from prometheus_client import Counter, Gauge, Histogram

from shared.db import utcnow

if TYPE_CHECKING:
    from shared.service import Runtime

HTTP_REQUESTS = Counter("redress_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "redress_http_request_seconds", "HTTP request latency", ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_PUBLISHED = Counter("redress_events_published_total", "Events the outbox relay published", ["type"])
EVENTS_CONSUMED = Counter("redress_events_consumed_total", "Events handled by consumers", ["type"])
HANDLER_LATENCY = Histogram(
    "redress_handler_seconds", "Event handler latency", ["type"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)
INBOX_DUPLICATES = Counter("redress_inbox_duplicates_total", "Redelivered events skipped by the inbox", ["type"])
DEAD_LETTERED = Counter("redress_dead_lettered_total", "Events sent to the dead-letter topic", ["type"])
TABLES_ANALYZED = Counter(
    "redress_db_tables_analyzed_total", "Tables analyzed because they grew since their last analysis", ["table"]
)
OUTBOX_BACKLOG = Gauge("redress_outbox_backlog", "Events written but not yet published")
OUTBOX_OLDEST_AGE = Gauge("redress_outbox_oldest_age_seconds", "Age of the oldest unpublished event")
TIMERS_FIRED = Counter("redress_timers_fired_total", "Durable timers fired", ["kind"])
TIMERS_DUE = Gauge("redress_timers_due", "Timers past their due time and not yet fired")
TIMER_LATENESS = Histogram(
    "redress_timer_lateness_seconds", "How late timers fire after their due time", ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
CONSUMER_LAG = Gauge("redress_consumer_lag", "Messages behind the partition end", ["topic", "partition"])
FAN_OUT_PAUSED = Gauge(
    "redress_incident_fanout_paused", "1 while the incident fan-out waits for consumers to catch up, else 0"
)
TIMERS_SCHEDULED = Gauge("redress_timers_scheduled", "Timers waiting to fire (SLA clocks, offers, care)", ["kind"])
TIMERS_OVERDUE = Gauge("redress_timers_overdue", "Timers past their due time and not fired yet", ["kind"])


async def refresh_database_gauges(runtime: "Runtime | None", timeout: float = 2.0) -> None:
    """Read the outbox backlog and the timers at scrape time; an unreachable database keeps the last values."""
    if runtime is None:  # not started (no lifespan): nothing to read
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(runtime.relay.backlog(), timeout)
        await asyncio.wait_for(_refresh_timers(runtime), timeout)


async def _refresh_timers(runtime: "Runtime") -> None:
    timers = runtime.db.tables.timers
    pending = sa.and_(timers.c.fired_at.is_(None), timers.c.cancelled_at.is_(None))
    overdue = sa.func.sum(sa.case((timers.c.due_at <= utcnow(), 1), else_=0))
    query = sa.select(timers.c.kind, sa.func.count(), overdue).where(pending).group_by(timers.c.kind)
    async with runtime.db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    seen = {kind for kind, *_ in rows}
    for kind, count, late in rows:
        TIMERS_SCHEDULED.labels(kind=kind).set(count)
        TIMERS_OVERDUE.labels(kind=kind).set(late or 0)
    # Kinds that no longer have pending timers drop to zero instead of keeping a stale count.
    for sample in list(TIMERS_SCHEDULED.collect()[0].samples):
        kind = sample.labels["kind"]
        if kind not in seen:
            TIMERS_SCHEDULED.labels(kind=kind).set(0)
            TIMERS_OVERDUE.labels(kind=kind).set(0)
