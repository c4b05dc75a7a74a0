"""The whole pipeline: intake -> routing -> (resolve) -> recovery -> loyalty, on four uvicorn processes.

- sustained: intake driven as hard as it goes (closed loop); how many complaints per second come out
  of routing as ``case.routed.v1`` during the load, the backlog left at its end and how long it takes
  to drain;
- latency at a fixed rate (open loop, 200 complaints/s): POST -> ``case.routed.v1`` seen on the
  broker, and for one case in ``resolve_share`` resolved by an agent as soon as it is routed,
  resolve POST -> ``loyalty.points_changed.v1`` (recovery and loyalty in between);
- resident memory of every service, sampled all along.
"""

import asyncio
import contextlib
import threading
import time
from dataclasses import replace
from typing import Any

import asyncpg
import httpx

from bench.context import Bench
from bench.infra import OPERATOR_SECRET, SERVICES, Server
from bench.loadgen import LoadResult, LoadSpec, describe
from bench.observer import Observer
from bench.scenarios.http import intake_env, probe_intake
from bench.stats import Spread, latency_summary, limit_row, ratio_row
from shared.auth import issue_token
from shared.events.vocabulary import Role

RECEIVED = "complaint.received.v1"
ROUTED = "case.routed.v1"
RESOLVED = "case.resolved.v1"
ISSUED = "compensation.issued.v1"
POINTS = "loyalty.points_changed.v1"


def start_stack(bench: Bench) -> dict[str, Server]:
    """The four services, each one uvicorn worker, ready."""
    for name in SERVICES:
        env = intake_env(bench.env) if name == "intake" else bench.env
        server = Server(name, f"services.{name}.app:app", env, bench.logs / f"{name}.log")
        bench.stack[name] = server
    for server in bench.stack.values():
        server.start()
    return bench.stack


class MemorySampler:
    """Samples the resident size of every service in a thread; keeps each one's first, peak and last value."""

    def __init__(self, servers: dict[str, Server], interval: float = 0.5) -> None:
        self.servers = servers
        self.interval = interval
        self.first: dict[str, float] = {}
        self.peak: dict[str, float] = dict.fromkeys(servers, 0.0)
        self.last: dict[str, float] = dict.fromkeys(servers, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for name, server in self.servers.items():
                rss = server.rss_mib()
                self.first.setdefault(name, rss)
                self.last[name] = rss
                self.peak[name] = max(self.peak[name], rss)


def measure_pipeline(bench: Bench) -> None:
    """Sustained throughput, end-to-end latency at 200/s, and memory, on the running stack."""
    servers = start_stack(bench)
    factory = probe_intake(servers["intake"])
    backlog = asyncio.run(_routing_backlog(bench.dsn, timeout=120))
    if backlog:
        bench.note(f"pipeline: routing still had {backlog:,} earlier complaints to route when measuring began")
    with MemorySampler(servers) as memory:
        asyncio.run(_measure(bench, servers, factory))
    for name in SERVICES:
        bench.add(limit_row("5 memory", f"{name} peak resident size under the pipeline load",
                            Spread.of([memory.peak[name]]), "MiB", limit=bench.plan.memory_limit_mib))
    bench.raw["memory_mib"] = {"peak": memory.peak, "end": memory.last}


async def _routing_backlog(dsn: str, timeout: float) -> int:
    """Wait until routing has a case for every stored complaint (earlier scenarios' complaints included)."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout
        while True:
            missing = int(await conn.fetchval(
                "SELECT (SELECT count(*) FROM intake.complaints) - (SELECT count(*) FROM routing.cases)"))
            if missing <= 0 or time.monotonic() > deadline:
                return max(0, missing)
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def _measure(bench: Bench, servers: dict[str, Server], factory: Any) -> None:
    observer = Observer(bench.bootstrap, want_data=frozenset({ROUTED}))
    await observer.start()
    try:
        await _sustained(bench, servers, factory, observer)
        await _latency(bench, servers, factory, observer)
    finally:
        await observer.stop()


async def _sustained(bench: Bench, servers: dict[str, Server], factory: Any, observer: Observer) -> None:
    plan = bench.plan
    rates, backlogs, drains, accepted_rates = [], [], [], []
    for run in range(plan.runs):
        spec = LoadSpec("127.0.0.1", servers["intake"].port, replace(factory, run_id=f"sus{run}{factory.run_id}"),
                        concurrency=plan.concurrency, duration=plan.sustained_duration, warmup=plan.warmup,
                        capture="complaint_id")
        started = time.time()
        result = await bench.loadgen.run_async(spec)
        ids = [cid for cid, _ in result.captured]
        window_start = started + plan.warmup
        window_end = window_start + plan.sustained_duration
        await _wait_all(observer, ROUTED, ids, timeout=max(60.0, 10 * plan.sustained_duration))
        arrivals = observer.arrivals[ROUTED]
        routed_times = [arrivals[cid] for cid in ids if cid in arrivals]
        in_window = sum(1 for t in routed_times if window_start <= t < window_end)
        sent_by_end = sum(1 for _, wall in result.captured if wall < window_end)
        routed_by_end = sum(1 for t in routed_times if t < window_end)
        rates.append(in_window / plan.sustained_duration)
        accepted_rates.append(result.throughput)
        backlogs.append(float(sent_by_end - routed_by_end))
        drains.append(max(0.0, max(routed_times, default=window_end) - window_end))
        bench.raw.setdefault("pipeline_sustained", []).append(
            {**describe(result), "routed_in_window_per_s": rates[-1], "backlog_at_end": backlogs[-1],
             "drain_s": drains[-1], "routed": len(routed_times), "accepted": len(ids)})
    bench.raw["pipeline_accepted_median"] = Spread.of(accepted_rates).median
    bench.add(ratio_row("2 pipeline", "complaints/s routed while intake is driven flat out", Spread.of(rates),
                        "req/s", bench.ceilings, "A", aim_ratio=0.5))
    bench.add(limit_row("2 pipeline", "intake accepted meanwhile", Spread.of(accepted_rates), "req/s"))
    bench.add(limit_row("2 pipeline", "backlog (accepted, not yet routed) at the end of the load",
                        Spread.of(backlogs), "events"))
    bench.add(limit_row("2 pipeline", "time to drain that backlog", Spread.of(drains), "s"))


async def _wait_all(observer: Observer, event_type: str, ids: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = observer.arrivals[event_type]
        if all(cid in seen for cid in ids):
            return True
        await asyncio.sleep(0.1)
    return False


class Resolver:
    """Resolves one routed case in ``share`` as an agent, noting when each resolve was sent."""

    def __init__(self, routing_url: str, share: int) -> None:
        token = issue_token(OPERATOR_SECRET, "bench-agent", Role.AGENT)
        self.client = httpx.AsyncClient(base_url=routing_url, headers={"Authorization": f"Bearer {token}"},
                                        timeout=30, limits=httpx.Limits(max_connections=16))
        self.share = share
        self.seen = 0
        self.sent: dict[str, float] = {}
        self.failures: dict[str, int] = {}
        self.samples: list[str] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.enabled = False

    def on_event(self, event_type: str, correlation: str, data: dict[str, Any] | None, _now: float) -> None:
        """Observer callback: resolve every ``share``-th routed case."""
        if not self.enabled or event_type != ROUTED or data is None:
            return
        self.seen += 1
        if self.seen % self.share:
            return
        task = asyncio.get_running_loop().create_task(self._resolve(correlation, str(data.get("case_id"))))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _resolve(self, complaint_id: str, case_id: str) -> None:
        sent = time.time()
        try:
            response = await self.client.post(f"/v1/cases/{case_id}/resolve", json={"resolution_code": "answered"})
        except httpx.HTTPError as exc:
            self.failures[type(exc).__name__] = self.failures.get(type(exc).__name__, 0) + 1
            return
        if response.is_success:
            self.sent[complaint_id] = sent
        else:
            self.failures[str(response.status_code)] = self.failures.get(str(response.status_code), 0) + 1
            if len(self.samples) < 3:
                self.samples.append(response.text[:300])

    async def close(self) -> None:
        """Wait for resolves in flight, then close the client."""
        with contextlib.suppress(Exception):
            await asyncio.gather(*self.tasks)
        await self.client.aclose()


def latency_rate(target: float, sustained: float) -> float:
    """The target rate when the stack sustains it with room to spare, else half of what it sustains."""
    if sustained >= 1.2 * target:
        return target
    return max(5.0, round(sustained / 2))


async def _latency(bench: Bench, servers: dict[str, Server], factory: Any, observer: Observer) -> None:
    plan = bench.plan
    rate_per_s = latency_rate(plan.pipeline_rate, bench.raw.get("pipeline_accepted_median", 0.0))
    if rate_per_s != plan.pipeline_rate:
        bench.note(f"pipeline: intake sustained only {bench.raw.get('pipeline_accepted_median', 0):.0f}"
                   f" complaints/s here, so latency was measured at {rate_per_s:g}/s, not {plan.pipeline_rate:g}/s")
    resolver = Resolver(servers["routing"].url, plan.resolve_share)
    observer.callbacks.append(resolver.on_event)
    runs: list[dict[str, Any]] = []
    curve: list[dict[str, Any]] = []
    try:
        for run in range(plan.runs):
            runs.append(await _latency_run(bench, servers, factory, observer, resolver, rate_per_s, f"lat{run}"))
        # Below the rate above: where Redress's share of the latency starts, before the stack queues.
        for rate in (r for r in plan.latency_curve if r < rate_per_s):
            curve.append(await _latency_run(bench, servers, factory, observer, resolver, rate, f"cur{rate:g}"))
    finally:
        await resolver.close()
    bench.raw.setdefault("pipeline_latency", []).extend(runs)
    bench.raw["pipeline_latency_curve"] = curve

    rate = f"{rate_per_s:g}/s"
    rows = [
        (f"POST -> complaint.received.v1 p50 at {rate}", "received_ms", "p50", None),
        (f"POST -> complaint.received.v1 p99 at {rate}", "received_ms", "p99", None),
        (f"POST -> case.routed.v1 p50 at {rate}", "routed_ms", "p50", None),
        (f"POST -> case.routed.v1 p99 at {rate}", "routed_ms", "p99", 50.0),
        (f"intake POST p99 at {rate}", "post_ms", "p99", None),
        ("resolve -> loyalty.points_changed.v1 p50", "resolve_to_points_ms", "p50", None),
        ("resolve -> loyalty.points_changed.v1 p99", "resolve_to_points_ms", "p99", None),
    ]
    for name, key, stat, limit in rows:
        bench.add(limit_row("2 pipeline", name, Spread.of([r[key][stat] for r in runs]), "ms", limit=limit))
    for point in curve:
        routed = point["routed_ms"]
        bench.add(limit_row("2 pipeline", f"POST -> case.routed.v1 at {point['rate']:g}/s (one run): p50 "
                            f"{routed['p50']:,.0f} ms, p99", Spread.of([routed["p99"]]), "ms", limit=50))
    if resolver.failures:
        bench.note(f"resolves that failed: {resolver.failures}; e.g. {resolver.samples[:1]}")


async def _latency_run(
    bench: Bench, servers: dict[str, Server], factory: Any, observer: Observer, resolver: "Resolver", rate: float,
    label: str,
) -> dict[str, Any]:
    """One open-loop run at ``rate``: POST -> received and -> routed, and resolve -> points, in ms."""
    spec = LoadSpec("127.0.0.1", servers["intake"].port, replace(factory, run_id=f"{label}{factory.run_id}"),
                    concurrency=64, duration=bench.plan.pipeline_duration, warmup=1.0, rate=rate,
                    capture="complaint_id")
    resolver.enabled = True
    started = time.time()
    result: LoadResult = await bench.loadgen.run_async(spec)
    ids = {cid: wall for cid, wall in result.captured if wall >= started + 1.0}
    await _wait_all(observer, ROUTED, list(ids), timeout=30)
    resolver.enabled = False
    await asyncio.gather(*resolver.tasks, return_exceptions=True)
    resolved = {cid: t for cid, t in resolver.sent.items() if cid in ids}
    await _wait_all(observer, POINTS, list(resolved), timeout=30)

    def since(event_type: str, sent: dict[str, float]) -> list[float]:
        seen = observer.arrivals[event_type]
        return [1000 * (seen[c] - wall) for c, wall in sent.items() if c in seen]

    routed, points = since(ROUTED, ids), since(POINTS, resolved)
    return {
        **describe(result), "rate": rate, "routed_ms": latency_summary(routed),
        # Where the time goes: intake's half (POST -> complaint.received.v1 on the broker).
        "received_ms": latency_summary(since(RECEIVED, ids)), "resolve_to_points_ms": latency_summary(points),
        "post_ms": latency_summary(result.latencies_ms), "complaints": len(ids), "routed": len(routed),
        "resolved": len(resolved), "points": len(points), "resolve_failures": dict(resolver.failures),
        "resolve_samples": resolver.samples,
    }
