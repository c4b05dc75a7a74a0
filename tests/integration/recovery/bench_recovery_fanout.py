"""Measure the incident fan-out alone: upload N customers in parts, issue them, cost per 100,000.

    .venv/bin/python -m tests.integration.recovery.bench_recovery_fanout --customers 1000000

A throwaway PostgreSQL database and recovery's own code in this process, without HTTP, broker or
outbox relay (bench_recovery_incident measures the whole service): the list is queued in parts of
5,000 as the API queues them, then `FanOut.fan_out_once` runs until every customer is issued.
For each 100,000 customers it prints the rate, recovery's CPU and the database backends' CPU per
1,000 customers (read from /proc: run it on the database's machine), and peak resident memory;
a cost that does not grow from the first window to the last is what it is for.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psutil
import sqlalchemy as sa

from shared.devstack import ROOT
from tests.support.infra import throwaway_database

WINDOW = 100_000


class Peak:
    """Peak resident memory of this process, sampled in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, me.memory_info().rss)
            time.sleep(0.2)

    def stop(self) -> int:
        """Stop sampling; the peak in MiB."""
        self._stop.set()
        self._thread.join()
        return round(self.peak / 2**20)


def _backend_cpu(pids: set[int]) -> float:
    """CPU seconds used so far by the given PostgreSQL backends."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def run(customers: int, part: int, url: str) -> dict[str, Any]:
    """Declare, queue every part, fan out; figures per window."""
    from services.recovery import incidents as inc
    from services.recovery.fanout import FanOut
    from services.recovery.models import delivery
    from services.recovery.policy import load_policy
    from services.recovery.schemas import IncidentIn
    from services.recovery.settings import Settings
    from shared.auth import Operator
    from shared.db import Database, make_engine
    from shared.events.vocabulary import Role
    from shared.outbox import Emitter

    settings = Settings(database_url=url)
    policy = load_policy(settings.policy_path)
    db = Database(make_engine(settings), delivery, settings.db_schema)
    fan_out = FanOut(db, Emitter(db, "/redress/recovery"), policy, settings)
    operator = Operator(subject="bench", role=Role.SUPERVISOR)
    memory, me = Peak(), psutil.Process()

    def ids(start: int) -> list[str]:
        return [f"bench-{i:08d}" for i in range(start, min(start + part, customers))]

    started = time.monotonic()
    body = {"title": "bench", "started_at": datetime.now(UTC).isoformat(), "customer_ids": ids(0)}
    body |= {"more_customers": True, "remedy": {"kind": "points", "points": 20000, "description": "outage"}}
    async with db.transaction() as conn:
        incident_id = (await inc.declare(conn, fan_out.emitter, policy, IncidentIn.model_validate(body), operator))[
            "incident_id"
        ]
    for start in range(part, customers, part):
        async with db.transaction() as conn:
            await inc.add_customers(conn, policy, incident_id, ids(start))
    async with db.transaction() as conn:
        await inc.complete_list(conn, incident_id)
    upload = time.monotonic() - started

    async def backends() -> set[int]:
        async with db.engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))
            return {int(r[0]) for r in rows}

    windows: list[dict[str, Any]] = []
    issued = mark = 0
    pids = await backends()
    mark_at, mark_cpu, mark_db = time.monotonic(), me.cpu_times(), _backend_cpu(pids)
    fan_started = time.monotonic()
    while issued < customers and (got := await fan_out.fan_out_once()):
        issued += got
        if issued - mark >= WINDOW or issued >= customers:
            now, cpu, db_cpu = time.monotonic(), me.cpu_times(), _backend_cpu(pids)
            done = issued - mark
            windows.append(
                {
                    "up_to": issued,
                    "per_second": round(done / (now - mark_at)),
                    "recovery_cpu_ms_per_1000": round(
                        ((cpu.user + cpu.system) - (mark_cpu.user + mark_cpu.system)) * 1e6 / done
                    ),
                    "database_cpu_ms_per_1000": round((db_cpu - mark_db) * 1e6 / done),
                }
            )
            print(json.dumps(windows[-1]), file=sys.stderr)
            mark, mark_at, mark_cpu, mark_db = issued, now, cpu, db_cpu
    fan_seconds = time.monotonic() - fan_started
    await fan_out.complete_finished()
    async with db.engine.connect() as conn:
        status = await conn.scalar(sa.text("SELECT status FROM incidents WHERE incident_id = :i"), {"i": incident_id})
    await db.engine.dispose()
    return {
        "customers": customers,
        "issued": issued,
        "status": status,
        "upload_seconds": round(upload, 1),
        "fan_out_seconds": round(fan_seconds, 1),
        "per_second": round(issued / fan_seconds) if fan_seconds else None,
        "peak_rss_mb": memory.stop(),
        "windows": windows,
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--part", type=int, default=5000)
    args = parser.parse_args()
    with throwaway_database() as url:
        env = {**os.environ, "DATABASE_URL": url}
        subprocess.run(
            [sys.executable, "-m", "shared.migrate", "recovery"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        print(json.dumps(asyncio.run(run(args.customers, args.part, url))))


if __name__ == "__main__":
    main()
