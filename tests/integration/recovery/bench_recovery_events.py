"""Measure recovery's cost per case event: SQL statements and CPU, through the real consumer path.

    .venv/bin/python -m tests.integration.recovery.bench_recovery_events --cases 2000

A throwaway PostgreSQL database and recovery's own consumer (`EventConsumer.process`, the batch
path a Kafka fetch takes) with recovery's handlers, in this process, without a broker: a stream
like the pipeline's (every case routed, one in four resolved a little later), in fetches of 50.
Prints one JSON line. Cost is reported here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord

from shared.devstack import ROOT
from shared.envelope import new_event, to_kafka
from tests.integration.recovery.helpers import resolved, routed, uid
from tests.support.infra import throwaway_database


def _records(cases: int) -> list[ConsumerRecord]:
    """The stream as a fetch returns it: routed cases, each fourth resolved forty cases later."""
    stream: list[Any] = []
    cases_routed = []
    for i in range(cases):
        cases_routed.append(routed(uid("cust")))
        stream.append(cases_routed[-1])
        if i % 4 == 3 and i >= 40:
            stream.append(resolved(cases_routed[i - 40]))
    records = []
    for offset, data in enumerate(stream):
        env = new_event(data, source="/bench", subject=data.case_id, correlation_id=uid("corr"))
        key, value, headers = to_kafka(env)
        records.append(
            ConsumerRecord("redress.cases.v1", 0, offset, 0, 0, key, value, None, len(key or b""), len(value), headers)
        )
    return records


async def run(cases: int, url: str, fetch: int) -> dict[str, Any]:
    """Feed the stream to the consumer; count statements and CPU after a warm-up fetch."""
    from services.recovery.handlers import make_handlers
    from services.recovery.models import delivery
    from services.recovery.policy import load_policy
    from services.recovery.settings import Settings
    from shared.consumer import EventConsumer
    from shared.db import Database, make_engine
    from shared.outbox import Emitter

    settings = Settings(database_url=url)
    db = Database(make_engine(settings), delivery, settings.db_schema)
    consumer = EventConsumer(
        service="recovery",
        settings=settings,
        db=db,
        bus=None,  # type: ignore[arg-type]  # only dead letters would need it
        emitter=Emitter(db, "/redress/recovery"),
        handlers=make_handlers(load_policy(settings.policy_path)),
        topics=[],
    )
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    records = _records(cases)
    await consumer.process(records[:100])  # warm-up: connections, statement caches
    statements, todo = 0, records[100:]
    cpu, started = time.process_time(), time.monotonic()
    for start in range(0, len(todo), fetch):
        await consumer.process(todo[start : start + fetch])
    cpu, wall = time.process_time() - cpu, time.monotonic() - started
    async with db.engine.connect() as conn:
        issued = await conn.scalar(sa.text("SELECT count(*) FROM compensations"))
    await db.engine.dispose()
    return {
        "events": len(todo),
        "statements_per_event": round(statements / len(todo), 2),
        "recovery_cpu_ms_per_event": round(cpu * 1000 / len(todo), 3),
        "wall_seconds": round(wall, 1),
        "compensations": issued,
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--fetch", type=int, default=50, help="records per fetch")
    args = parser.parse_args()
    with throwaway_database() as url:
        env = {**os.environ, "DATABASE_URL": url}
        subprocess.run(
            [sys.executable, "-m", "shared.migrate", "recovery"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        print(json.dumps(asyncio.run(run(args.cases, url, args.fetch))))


if __name__ == "__main__":
    main()
