"""SLA timers: how late ``shared.timers.TimerWorker`` fires with 100,000 timers pending.

A routing-like ``timers`` table (the shared delivery tables, in a schema of the benchmark's own) gets
``timers_pending`` timers: ``timers_due`` of them fall due evenly over ``timers_window`` seconds, the
rest are SLA deadlines hours away (they must cost nothing: the partial index skips them). A
trivial handler notes how late each one fired. Then a burst: ``timers_burst`` timers due at once,
to see how fast the worker catches up.
"""

import asyncio
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bench.context import Bench
from bench.stats import Spread, latency_summary, limit_row
from shared.db import Database, add_delivery_tables
from shared.outbox import Emitter
from shared.settings import ServiceSettings
from shared.timer_batch import BatchedTimerWorker
from shared.timers import TimerContext, TimerWorker

SCHEMA = "bench_timers"
KIND = "sla.warning"
# The stream's first timer is due this long after the fill starts. Writing 100,000 rows and analysing
# them takes seconds on a busy machine: a shorter lead would start the worker behind the stream and
# measure the fill, not the worker.
FILL_LEAD_S = 12.0
# The worker every service runs today, and the batched one proposed in docs/performance.md.
WORKERS: dict[str, type[TimerWorker]] = {"TimerWorker": TimerWorker, "BatchedTimerWorker": BatchedTimerWorker}


def measure_timers(bench: Bench) -> None:
    """Lateness p50/p99/max of due timers among many pending ones, then the catch-up rate of a burst."""
    asyncio.run(_measure(bench))


async def _measure(bench: Bench) -> None:
    plan = bench.plan
    metadata = sa.MetaData()
    tables = add_delivery_tables(metadata)
    engine = create_async_engine(bench.database_url, pool_size=5, max_overflow=5,
                                 connect_args={"server_settings": {"search_path": SCHEMA}})
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
        await conn.execute(sa.text("TRUNCATE timers"))
    db = Database(engine, tables, SCHEMA)
    try:
        for label, worker_class in WORKERS.items():
            steady = await _steady(bench, db, worker_class)
            burst_rate, burst_lateness = await _burst(bench, db, worker_class)
            summary = latency_summary(steady)
            note = f"{len(steady):,} of {plan.timers_due:,} due fired; {plan.timers_pending:,} pending"
            section = f"3 timers ({label})"
            bench.add(limit_row(section, "lateness p50", Spread.of([summary["p50"]]), "ms", note=note))
            bench.add(limit_row(section, "lateness p99", Spread.of([summary["p99"]]), "ms", limit=1000))
            bench.add(limit_row(section, "lateness max", Spread.of([summary["max"]]), "ms"))
            bench.add(limit_row(section, f"burst of {plan.timers_burst:,} due at once: fired per second",
                                Spread.of([burst_rate]), "timers/s"))
            bench.add(limit_row(section, "burst: lateness of the last one", Spread.of([burst_lateness]), "ms"))
            bench.raw.setdefault("timers", {})[label] = {
                "steady_ms": summary, "burst_rate": burst_rate, "burst_last_ms": burst_lateness}
        explain = await _explain(db)
    finally:
        await engine.dispose()
    bench.raw["timers"]["claim_plan"] = explain
    bench.notes.append(f"Timer claim query plan ({plan.timers_pending:,} pending):\n\n```\n" + explain + "\n```")


async def _fill(db: Database, pending: int, due: int, first_due: float, window: float) -> None:
    """``due`` timers evenly over [first_due, first_due + window] (epoch seconds), the rest hours away."""
    step = window / max(1, due - 1)
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("TRUNCATE timers"))
        await conn.execute(sa.text(
            "INSERT INTO timers (kind, key, due_at, payload, created_at, attempts) "
            "SELECT :kind, 'case-' || g, CASE WHEN g <= :due "
            # Cast: PostgreSQL would infer integers here, and the driver would truncate the fractions.
            "THEN to_timestamp(CAST(:first AS double precision) + (g - 1) * CAST(:step AS double precision)) "
            "ELSE now() + make_interval(secs => 3600 + (g % 86400)) END, "
            "json_build_object('correlation_id', 'case-' || g), now(), 0 FROM generate_series(1, :pending) g"
        ), {"kind": KIND, "due": due, "first": first_due, "step": step, "pending": pending})
        await conn.execute(sa.text("ANALYZE timers"))


async def _run_worker(db: Database, worker_class: type[TimerWorker], expected: int, timeout: float) -> list[float]:
    """Run one TimerWorker until ``expected`` timers fired (or timeout); lateness in ms per timer."""
    lateness: list[float] = []

    async def handler(ctx: TimerContext) -> None:
        lateness.append(1000 * (time.time() - ctx.due_at.timestamp()))

    worker = worker_class(db, Emitter(db, "/bench"), {KIND: handler}, ServiceSettings())
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + timeout
    while len(lateness) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    worker.stop()
    await asyncio.wait_for(task, 30)
    return lateness


async def _steady(bench: Bench, db: Database, worker_class: type[TimerWorker]) -> list[float]:
    plan = bench.plan
    first_due = time.time() + FILL_LEAD_S
    await _fill(db, plan.timers_pending, plan.timers_due, first_due, plan.timers_window)
    if time.time() > first_due:
        bench.note(f"timers: the fill ended {time.time() - first_due:.1f} s after the first timer was due; "
                   "the worker started behind the stream")
    return await _run_worker(db, worker_class, plan.timers_due, timeout=FILL_LEAD_S + plan.timers_window + 30)


async def _burst(bench: Bench, db: Database, worker_class: type[TimerWorker]) -> tuple[float, float]:
    plan = bench.plan
    due_at = time.time() + 2
    await _fill(db, plan.timers_pending, plan.timers_burst, due_at, 0.0)
    await asyncio.sleep(max(0.0, due_at - time.time()))
    started = time.monotonic()
    lateness = await _run_worker(db, worker_class, plan.timers_burst, timeout=60)
    elapsed = time.monotonic() - started
    return len(lateness) / elapsed if elapsed else 0.0, max(lateness, default=float("nan"))


async def _explain(db: Database) -> str:
    """The plan of the worker's claim query on the filled table."""
    now = datetime.now(UTC)
    async with db.engine.connect() as conn:
        rows = await conn.execute(sa.text(
            "EXPLAIN SELECT * FROM timers WHERE kind IN ('sla.warning') AND fired_at IS NULL "
            "AND cancelled_at IS NULL AND due_at <= :now ORDER BY due_at, id LIMIT 200 FOR UPDATE SKIP LOCKED"
        ), {"now": now})
        return "\n".join(r[0] for r in rows)
