"""What every scenario shares: the plan (quick or full), the infrastructure, the load generator, the results."""

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.infra import Server
from bench.loadgen import LoadGenerator
from bench.stats import Row, Spread


@dataclass(frozen=True)
class Plan:
    """Durations and sizes; the quick plan keeps the whole run near two minutes."""

    name: str
    runs: int
    duration: float
    warmup: float
    concurrency: int
    workers: tuple[int, ...]
    pipeline_rate: float
    pipeline_duration: float
    sustained_duration: float
    resolve_share: int  # resolve one routed case in this many
    timers_pending: int
    timers_due: int
    timers_window: float
    timers_burst: int
    volume_sizes: tuple[int, ...]
    incident_customers: int
    memory_limit_mib: float = 150.0
    fill_budget_s: float = 240.0  # volume: stop filling (and say so) rather than blow the run's time budget
    wait_cap_s: float = 180.0  # incident: stop waiting for grants after this long past the upload
    # incident: recovery's fan-out throttle (RECOVERY_INCIDENT_RATE_PER_SECOND); 0: recovery's own setting.
    # Recovery's backpressure keeps loyalty within what the embedded broker keeps (about 5 MiB per partition).
    incident_rate: float = 0.0
    # pipeline: latency also measured at these rates, those below the main latency run's (one run each).
    latency_curve: tuple[float, ...] = (10.0, 25.0, 50.0, 100.0)

    @classmethod
    def from_env(cls) -> "Plan":
        """BENCH_QUICK=1 for the short plan, else the full one.

        BENCH_INCIDENT_CUSTOMERS sets the incident's size, BENCH_INCIDENT_RATE recovery's fan-out throttle.
        """
        plan = cls._quick() if os.environ.get("BENCH_QUICK", "") not in ("", "0") else cls._full()
        if customers := os.environ.get("BENCH_INCIDENT_CUSTOMERS", ""):
            # A larger incident may take longer than the usual cap: wait for it at 500 grants/s at least.
            size = int(customers)
            plan = replace(plan, incident_customers=size, wait_cap_s=max(plan.wait_cap_s, size / 500))
        if rate := os.environ.get("BENCH_INCIDENT_RATE", ""):
            plan = replace(plan, incident_rate=float(rate))
        return plan

    @classmethod
    def _quick(cls) -> "Plan":
        return cls(
            name="quick", runs=3, duration=2.5, warmup=0.7, concurrency=32, workers=(1, 2),
            pipeline_rate=200, pipeline_duration=6, sustained_duration=3, resolve_share=4,
            timers_pending=100_000, timers_due=3_000, timers_window=5, timers_burst=5_000,
            volume_sizes=(1_000, 3_000), incident_customers=5_000, fill_budget_s=60, wait_cap_s=60,
        )

    @classmethod
    def _full(cls) -> "Plan":
        return cls(
            name="full", runs=3, duration=6, warmup=1.5, concurrency=32, workers=(1, 2, 4),
            pipeline_rate=200, pipeline_duration=15, sustained_duration=8, resolve_share=4,
            timers_pending=100_000, timers_due=20_000, timers_window=20, timers_burst=20_000,
            volume_sizes=(1_000, 10_000, 100_000), incident_customers=100_000,
        )


@dataclass
class Bench:
    """The run in progress."""

    plan: Plan
    database_url: str
    dsn: str
    bootstrap: str
    env: dict[str, str]
    logs: Path
    loadgen: LoadGenerator
    ceilings: dict[str, Spread] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    stack: dict[str, Server] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        """Record a row and print it as it comes."""
        self.rows.append(row)
        ratio = f" = {row.ratio:.2f}x {row.ceiling}" if row.ceiling and row.ratio == row.ratio else ""
        print(f"  {row.section}: {row.name}: {row.value.median:,.1f} {row.unit} "
              f"[{row.value.low:,.1f}..{row.value.high:,.1f}]{ratio}", flush=True)

    def note(self, text: str) -> None:
        """A remark for the report (what was skipped, plans, caveats)."""
        self.notes.append(text)
        print(f"  note: {text.splitlines()[0]}", flush=True)
