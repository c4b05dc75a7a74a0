"""Throughput over HTTP: the two ceilings, intake, and intake with 1, 2 and 4 uvicorn workers."""

import asyncio
import json
from dataclasses import replace

import asyncpg
import httpx

from bench.ceiling import TABLE_DDL
from bench.context import Bench
from bench.infra import Server, cpu_spent, postgres_cpu
from bench.loadgen import LoadResult, LoadSpec, describe
from bench.stats import Spread, latency_summary, limit_row, ratio_row
from bench.workload import ComplaintFactory, complaint_body

INTAKE_PATH = "/v1/channels/web/complaints"
BENCH_KEY_ID = "bench-web"
BENCH_KEY_SECRET = "bench-channel-secret-0123456789abcdef"


def repeat(bench: Bench, server: Server, factory: ComplaintFactory, label: str) -> list[LoadResult]:
    """``plan.runs`` closed-loop runs of the same load against one server."""
    results = []
    costs = []
    database = bench.dsn.rsplit("/", 1)[1]
    for run in range(bench.plan.runs):
        spec = LoadSpec("127.0.0.1", server.port, replace(factory, run_id=f"{label[:6]}{run}{factory.run_id}"),
                        concurrency=bench.plan.concurrency, duration=bench.plan.duration, warmup=bench.plan.warmup)
        cpu_before, pg_before = server.cpu_seconds(), postgres_cpu(database)
        result = bench.loadgen.run(spec)
        cpu, pg = server.cpu_seconds() - cpu_before, cpu_spent(pg_before, postgres_cpu(database))
        if result.ok == 0:
            raise RuntimeError(f"{label}: no request succeeded: {result.statuses} {result.errors} {result.samples}")
        results.append(result)
        # CPU per request hardly depends on what else runs on the machine, unlike requests/s.
        costs.append({"server_cpu_ms_per_req": 1000 * cpu / max(1, result.sent),
                      "postgres_cpu_ms_per_req": 1000 * pg / max(1, result.sent),
                      "generator_cpu_ms_per_req": 1000 * result.cpu_s / max(1, result.sent)})
    bench.raw.setdefault("http", {})[label] = [{**describe(r), **c} for r, c in zip(results, costs, strict=True)]
    bench.raw.setdefault("cpu_per_request", {})[label] = {
        k: Spread.of([c[k] for c in costs]).median for k in costs[0]}
    return results


def cpu_row(bench: Bench, section: str, label: str) -> None:
    """Server and PostgreSQL CPU milliseconds per request of one measured server (medians of the runs)."""
    cost = bench.raw["cpu_per_request"][label]
    value = Spread.of([cost["server_cpu_ms_per_req"]])
    bench.add(limit_row(section, f"{label}: CPU per request (server; PostgreSQL {cost['postgres_cpu_ms_per_req']:.2f})",
                        value, "ms"))


def throughput(results: list[LoadResult]) -> Spread:
    """Median, min and max requests/s of the runs."""
    return Spread.of([r.throughput for r in results])


def latency(results: list[LoadResult], pct: str) -> Spread:
    """Median, min and max of one latency percentile over the runs."""
    return Spread.of([latency_summary(r.latencies_ms)[pct] for r in results])


def ceiling_server(bench: Bench, insert: bool, workers: int) -> Server:
    """Ceiling A (with the INSERT) or B, under uvicorn."""
    env = dict(bench.env)
    if insert:
        env["CEILING_DSN"] = bench.dsn
    name = f"ceiling-{'a' if insert else 'b'}-{workers}w"
    return Server(name, "bench.ceiling:app", env, bench.logs / f"{name}.log", workers=workers)


async def prepare_ceiling_table(dsn: str) -> None:
    """The ceiling's table, emptied."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(TABLE_DDL)
        await conn.execute("TRUNCATE ceiling.complaints")
    finally:
        await conn.close()


def measure_ceilings(bench: Bench) -> None:
    """Ceiling B and A at every worker count of the plan."""
    asyncio.run(prepare_ceiling_table(bench.dsn))
    factory = ComplaintFactory(path="/complaints")
    for workers in bench.plan.workers:
        for insert in (False, True):
            key = f"{'A' if insert else 'B'}{'' if workers == 1 else f'@{workers}w'}"
            server = ceiling_server(bench, insert, workers).start(ready_path="/docs")
            try:
                results = repeat(bench, server, factory, f"ceiling {key}")
            finally:
                server.stop()
            bench.ceilings[key] = throughput(results)
            what = "validate + 1 asyncpg INSERT" if insert else "validate only"
            bench.add(limit_row("ceiling", f"ceiling {key}: {what}, {workers} worker(s)", bench.ceilings[key], "req/s"))
            if workers == 1:
                bench.add(limit_row("ceiling", f"ceiling {key} p99", latency(results, "p99"), "ms"))
                cpu_row(bench, "ceiling", f"ceiling {key}")


def probe_intake(server: Server) -> ComplaintFactory:
    """Find the body shape (and signature) the running intake accepts; raise with its answers if none."""
    answers = []
    for shape in ("webform", "legacy"):
        for signed in (False, True):
            factory = ComplaintFactory(path=INTAKE_PATH, shape=shape,
                                       key_id=BENCH_KEY_ID if signed else None,
                                       secret=BENCH_KEY_SECRET if signed else None)
            raw = factory.next_request()
            head, body = raw.split(b"\r\n\r\n", 1)
            headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[2:])
            response = httpx.post(server.url + INTAKE_PATH, content=body, headers=headers, timeout=10)
            if response.is_success:
                return factory
            answers.append(f"{shape}{' signed' if signed else ''}: {response.status_code} {response.text[:300]}")
    raise RuntimeError("intake accepted no benchmark body:\n" + "\n".join(answers))


def intake_env(base: dict[str, str]) -> dict[str, str]:
    """The stack environment plus a channel key for signed benchmark requests."""
    env = dict(base)
    keys = {"web": [{"key_id": BENCH_KEY_ID, "secret": BENCH_KEY_SECRET}]}
    env.setdefault("INTAKE_CHANNEL_KEYS", json.dumps(keys))
    # The benchmark is one channel key sending thousands a second: lift its rate limit.
    env.setdefault("INTAKE_CHANNEL_RATE_PER_SECOND", "1000000")
    env.setdefault("INTAKE_CHANNEL_RATE_BURST", "1000000")
    return env


async def statements(dsn: str, reset: bool = False) -> list[dict[str, object]]:
    """Statements PostgreSQL ran since the last reset (pg_stat_statements; empty when unavailable)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if reset:
            await conn.execute("SELECT pg_stat_statements_reset()")
            return []
        rows = await conn.fetch(
            "SELECT calls, total_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query"
            " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND query NOT ILIKE '%pg_stat_statements%' ORDER BY calls DESC"
        )
        return [dict(r) for r in rows]
    except asyncpg.PostgresError:
        return []
    finally:
        await conn.close()


def statement_rows(bench: Bench, section: str, label: str, results: list[LoadResult], stats: list[dict]) -> None:
    """SQL statements per request, and the most frequent ones as a note."""
    requests = sum(r.sent for r in results)
    if not stats or not requests:
        return
    calls = sum(int(s["calls"]) for s in stats)  # type: ignore[call-overload]
    bench.add(limit_row(section, f"{label}: SQL statements per request", Spread.of([calls / requests]), "stmts"))
    top = "\n".join(f"{int(s['calls']) / requests:6.2f}  {s['query']}" for s in stats[:25])  # type: ignore[call-overload]
    bench.raw.setdefault("statements", {})[label] = stats[:40]
    bench.notes.append(f"Statements per request, {label} (pg_stat_statements):\n\n```\n{top}\n```")


def measure_intake(bench: Bench) -> None:
    """Intake alone (no consumers running) at every worker count, against the ceilings."""
    for workers in bench.plan.workers:
        server = Server(f"intake-{workers}w", "services.intake.app:app", intake_env(bench.env),
                        bench.logs / f"intake-{workers}w.log", workers=workers).start()
        try:
            factory = probe_intake(server)
            if workers == 1:
                bench.raw["intake_body"] = complaint_body(factory.shape, "example", "cust-1", 1)
                bench.raw["intake_signed"] = bool(factory.key_id)
                asyncio.run(statements(bench.dsn, reset=True))
            results = repeat(bench, server, factory, f"intake {workers}w")
            if workers == 1:
                statement_rows(bench, "1 intake", "intake", results, asyncio.run(statements(bench.dsn)))
        finally:
            server.stop()
        value = throughput(results)
        if workers == 1:
            signed = "signed, " if factory.key_id else ""
            bench.add(ratio_row("1 intake", f"accepted complaints/s ({signed}1 worker)", value, "req/s",
                                bench.ceilings, "A", aim_ratio=1.0))
            bench.add(limit_row("1 intake", "latency p50", latency(results, "p50"), "ms"))
            bench.add(limit_row("1 intake", "latency p99", latency(results, "p99"), "ms"))
            cpu_row(bench, "1 intake", "intake 1w")
            bench.raw["intake_1w_cpu_note"] = "generator CPU s per run: " + ", ".join(
                f"{r.cpu_s:.1f}" for r in results)
        else:
            bench.add(ratio_row("6 scaling", f"intake complaints/s, {workers} workers", value, "req/s",
                                bench.ceilings, f"A@{workers}w"))
