"""Cost per complaint as data grows: intake throughput and read latency at 1,000 ... 100,000 stored complaints.

Complaints are stored the real way (POSTed to intake, routed by routing). At each size: intake's
throughput and CPU per request, and the latency of the reads operators use all day (a queue page,
a case, a customer's history in routing, a customer's complaints in intake). At the largest size the
plans PostgreSQL chose for the services' own statements are captured with ``auto_explain`` (private
cluster only), to show queue and timeline queries stay on indexes.
"""

import asyncio
import re
import time
from dataclasses import replace

import asyncpg
import httpx

from bench import infra
from bench.context import Bench
from bench.infra import OPERATOR_SECRET, Server
from bench.loadgen import LoadSpec, describe
from bench.scenarios.http import cpu_row, intake_env, probe_intake, repeat, throughput
from bench.stats import Spread, latency_summary, limit_row
from bench.workload import CycleFactory, raw_request
from shared.auth import issue_token
from shared.events.vocabulary import Role


async def _counts(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        complaints = await conn.fetchval("SELECT count(*) FROM intake.complaints")
        routed = await conn.fetchval("SELECT count(*) FROM routing.cases")
        return int(complaints), int(routed)
    finally:
        await conn.close()


async def read_samples(dsn: str) -> dict[str, list[str]]:
    """Ids to read: cases, their customers, complaints, and the busiest queue."""
    conn = await asyncpg.connect(dsn)
    try:
        cases = await conn.fetch("SELECT id, customer_id FROM routing.cases ORDER BY random() LIMIT 200")
        complaints = await conn.fetch("SELECT id FROM intake.complaints ORDER BY random() LIMIT 200")
        queue = await conn.fetchval("SELECT queue FROM routing.cases GROUP BY queue ORDER BY count(*) DESC LIMIT 1")
    finally:
        await conn.close()
    return {"cases": [r["id"] for r in cases], "customers": [r["customer_id"] for r in cases],
            "complaints": [r["id"] for r in complaints], "queue": [queue or "general"]}


def _reads(samples: dict[str, list[str]], token: str) -> dict[str, tuple[str, list[bytes]]]:
    """Read workloads: name -> (service, requests)."""
    auth = {"Authorization": f"Bearer {token}"}

    def gets(paths: list[str]) -> list[bytes]:
        return [raw_request("GET", p, None, auth) for p in paths]

    queue = samples["queue"][0]
    return {
        "routing: queue page (50 by deadline)": ("routing", gets([f"/v1/queues/{queue}/cases?limit=50"])),
        "routing: one case": ("routing", gets([f"/v1/cases/{c}" for c in samples["cases"]])),
        "routing: a customer's cases": ("routing", gets([f"/v1/customers/{c}" for c in samples["customers"]])),
        "intake: a customer's complaints": ("intake",
                                            gets([f"/v1/complaints?customer_id={c}" for c in samples["customers"]])),
        "intake: one complaint": ("intake", gets([f"/v1/complaints/{c}" for c in samples["complaints"]])),
    }


def measure_volume(bench: Bench) -> None:
    """Fill to each size, then measure intake writes and the operators' reads."""
    plan = bench.plan
    intake = Server("intake", "services.intake.app:app", intake_env(bench.env), bench.logs / "volume-intake.log")
    routing = Server("routing", "services.routing.app:app", bench.env, bench.logs / "volume-routing.log")
    bench.stack.update({"intake": intake, "routing": routing})
    intake.start()
    routing.start()
    factory = probe_intake(intake)
    token = issue_token(OPERATOR_SECRET, "bench-reader", Role.SUPERVISOR)
    started = time.monotonic()
    for size in plan.volume_sizes:
        stored, _ = asyncio.run(_counts(bench.dsn))
        if stored < size:
            budget = plan.fill_budget_s - (time.monotonic() - started)
            spec = LoadSpec("127.0.0.1", intake.port, replace(factory, run_id=f"fill{size}"), concurrency=32,
                            duration=max(1.0, budget), warmup=0, max_requests=size - stored)
            bench.loadgen.run(spec)
        stored, routed = wait_routed(bench.dsn, timeout=120)
        label = f"{stored:,} stored"
        bench.raw.setdefault("volume_sizes", []).append({"complaints": stored, "cases": routed})
        results = repeat(bench, intake, replace(factory, run_id=f"vol{size}"), f"intake at {label}")
        bench.add(limit_row("6 volume", f"intake complaints/s at {label}", throughput(results), "req/s"))
        cpu_row(bench, "6 volume", f"intake at {label}")
        _measure_reads(bench, intake, routing, label, token)
        if stored < size:
            bench.note(f"volume: filling stopped at {stored:,} of {size:,} complaints (time budget)")
            break
    _capture_plans(bench, intake, routing, token)


def wait_routed(dsn: str, timeout: float) -> tuple[int, int]:
    """Wait until routing has a case for every stored complaint (or ``timeout``); (complaints, cases)."""
    deadline = time.monotonic() + timeout
    stored, routed = asyncio.run(_counts(dsn))
    while routed < stored and time.monotonic() < deadline:
        time.sleep(0.5)
        stored, routed = asyncio.run(_counts(dsn))
    return stored, routed


def _measure_reads(bench: Bench, intake: Server, routing: Server, label: str, token: str) -> None:
    samples = asyncio.run(read_samples(bench.dsn))
    servers = {"intake": intake, "routing": routing}
    for name, (service, requests) in _reads(samples, token).items():
        spec = LoadSpec("127.0.0.1", servers[service].port, CycleFactory(requests), concurrency=8,
                        duration=min(3.0, bench.plan.duration), warmup=0.5)
        result = bench.loadgen.run(spec)
        summary = latency_summary(result.latencies_ms)
        bench.raw.setdefault("volume_reads", {})[f"{name} at {label}"] = describe(result)
        ok = f"{result.ok}/{sum(result.statuses.values())} ok"
        bench.add(limit_row("6 volume", f"{name} p99 at {label}", Spread.of([summary["p99"]]), "ms",
                            note=f"{result.throughput:,.0f}/s, {ok}"))


def _capture_plans(bench: Bench, intake: Server, routing: Server, token: str) -> None:
    """Restart both services with auto_explain on, read once each way, collect the plans from the log."""
    log_path = infra.PRIVATE_LOG
    if log_path is None:
        bench.note("volume: query plans not captured (needs the private PostgreSQL cluster)")
        return
    database = bench.dsn.rsplit("/", 1)[1]
    samples = asyncio.run(read_samples(bench.dsn))  # before auto_explain: only the services' plans are wanted
    asyncio.run(_set_auto_explain(bench.dsn, database, on=True))
    offset = log_path.stat().st_size
    try:
        for server in (intake, routing):
            server.stop()
            server.start()
        headers = {"Authorization": f"Bearer {token}"}
        for name, (service, requests) in _reads(samples, token).items():
            path = requests[0].split(b" ", 2)[1].decode()
            url = (intake if service == "intake" else routing).url
            httpx.get(url + path, headers=headers, timeout=30)
            bench.raw.setdefault("plan_requests", []).append({"read": name, "path": path})
        time.sleep(1)
    finally:
        asyncio.run(_set_auto_explain(bench.dsn, database, on=False))
    with log_path.open(errors="replace") as log:
        log.seek(offset)
        text = log.read()
    plans = _interesting_plans(text)
    bench.raw["plans"] = plans
    for query, plan in plans.items():
        bench.notes.append(f"Plan at the largest size:\n\n```\n{query}\n{plan}\n```")


async def _set_auto_explain(dsn: str, database: str, on: bool) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        if on:
            await conn.execute(f"ALTER DATABASE {database} SET session_preload_libraries = 'auto_explain'")
            await conn.execute(f"ALTER DATABASE {database} SET auto_explain.log_min_duration = 0")
        else:
            await conn.execute(f"ALTER DATABASE {database} RESET session_preload_libraries")
            await conn.execute(f"ALTER DATABASE {database} RESET auto_explain.log_min_duration")
    finally:
        await conn.close()


_PLAN_NODE = re.compile(r"^\s*(->\s+)?[A-Z][\w ]*?\s+\(cost=")


def parse_auto_explain(log_text: str) -> list[tuple[str, str]]:
    """(query, plan) pairs from auto_explain entries of a PostgreSQL log (continuation lines start with a tab)."""
    entries: list[tuple[str, str]] = []
    lines = log_text.splitlines()
    for index, line in enumerate(lines):
        if not line.rstrip().endswith("plan:"):
            continue
        block = []
        for follow in lines[index + 1 :]:
            if not follow.startswith("\t"):
                break
            block.append(follow[1:])
        split = next((i for i, text in enumerate(block) if _PLAN_NODE.match(text)), len(block))
        query = " ".join(" ".join(block[:split]).removeprefix("Query Text:").split())
        entries.append((query, "\n".join(block[split:])))
    return entries


def _interesting_plans(log_text: str) -> dict[str, str]:
    """Plans of SELECTs on cases, complaints and their history, one per distinct query text."""
    plans: dict[str, str] = {}
    for query, plan in parse_auto_explain(log_text):
        if not query.upper().startswith("SELECT") or not re.search(r"\b(cases|complaints|timeline|history)", query):
            continue
        plans.setdefault(query[:600], plan)
    return plans
