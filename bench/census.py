"""Where the CPU goes in the whole stack at a fixed rate: every process's share, per complaint.

    python -m bench.census --rate 55 --seconds 15            # the four services, open loop at 55/s
    python -m bench.census --rate 0 --services intake        # intake alone, closed loop (flat out)
    python -m bench.census --rate 55 --env INTAKE_KAFKA_FETCH_MAX_WAIT_MS=20

Starts the services on a throwaway database and the embedded broker, measures them idle for 5 s,
then loads intake with signed complaints and prints, per process (each service, PostgreSQL, this
process with the broker), the share of one core and the CPU milliseconds per accepted complaint,
and the statements PostgreSQL ran per complaint (``pg_stat_statements``). Per complaint means per
complaint accepted in the measured window; the CPU time includes the 1 s warm-up, so the figures
lean high by about warm-up / duration.
"""

import argparse
import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bench.infra import SERVICES, Server
from bench.loadgen import LoadSpec
from bench.scenarios.http import probe_intake
from bench.standalone import standalone_stack
from bench.stats import latency_summary

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_seconds(process: psutil.Process) -> float:
    """User plus system CPU seconds a process has used so far."""
    times = process.cpu_times()
    return times.user + times.system


def _postgres_cpu() -> float:
    total = 0.0
    for process in psutil.process_iter(["name"]):
        try:
            if "postgres" in (process.info["name"] or ""):
                total += cpu_seconds(process)
        except psutil.Error:
            continue  # a backend that ended meanwhile
    return total


def cpu_snapshot(servers: list[Server]) -> dict[str, float]:
    """CPU seconds used so far by each service (with its workers), PostgreSQL and this process."""
    snapshot = {}
    for server in servers:
        process = psutil.Process(server.process.pid)  # type: ignore[union-attr]
        snapshot[server.name] = cpu_seconds(process) + sum(map(cpu_seconds, process.children(recursive=True)))
    snapshot["postgres"] = _postgres_cpu()
    snapshot["bench (broker)"] = cpu_seconds(psutil.Process())
    return snapshot


def _measure(snapshot: Callable[[], dict[str, float]], run: Callable[[], Any]) -> tuple[dict[str, float], float, Any]:
    before, started = snapshot(), time.monotonic()
    result = run()
    after, elapsed = snapshot(), time.monotonic() - started
    return {name: after[name] - before[name] for name in before}, elapsed, result


async def _sql(dsn: str, statement: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(statement))
    finally:
        await conn.close()


TOP_STATEMENTS = """
SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
FROM pg_stat_statements ORDER BY calls DESC LIMIT 25
"""


def main() -> None:
    """Start the stack, measure it idle and under load, print the census."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=55.0, help="complaints/s (open loop); 0: closed loop, flat out")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--services", default=",".join(SERVICES), help="comma-separated, intake first")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the services (repeatable)")
    args = parser.parse_args()
    names = args.services.split(",")
    extra = dict(item.split("=", 1) for item in args.env)
    logs = RESULTS / f"census-{time.strftime('%Y%m%dT%H%M%S')}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    with standalone_stack(names, logs, **extra) as stack:
        servers, loadgen = stack.servers, stack.loadgen
        factory = probe_intake(servers[0])
        asyncio.run(_sql(stack.dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
        idle, idle_s, _ = _measure(lambda: cpu_snapshot(servers), lambda: time.sleep(5))
        print("idle, % of one core:", {k: round(100 * v / idle_s, 1) for k, v in idle.items()})
        asyncio.run(_sql(stack.dsn, "SELECT pg_stat_statements_reset()"))
        spec = LoadSpec("127.0.0.1", servers[0].port, factory, concurrency=32 if not args.rate else 64,
                        duration=args.seconds, warmup=1.0, rate=args.rate or None)
        used, elapsed, result = _measure(lambda: cpu_snapshot(servers), lambda: loadgen.submit(spec).result())
        accepted = max(1, result.ok)
        print(f"load: {result.throughput:.1f} complaints/s accepted, POST latency (ms)",
              {k: round(v, 1) for k, v in latency_summary(result.latencies_ms).items()})
        print("under load, % of one core:", {k: round(100 * v / elapsed, 1) for k, v in used.items()},
              f"all: {round(100 * sum(used.values()) / elapsed)}%")
        print("CPU ms per complaint:", {k: round(1000 * v / accepted, 2) for k, v in used.items()},
              f"all: {1000 * sum(used.values()) / accepted:.1f}")
        print("statements per complaint (all services):")
        for row in asyncio.run(_sql(stack.dsn, TOP_STATEMENTS)):
            print(f"  {row['calls'] / accepted:6.2f}  {row['query']}")

if __name__ == "__main__":
    main()
