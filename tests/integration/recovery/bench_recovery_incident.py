"""Measure incident-wide recovery: N affected customers compensated, time and peak memory.

    .venv/bin/python -m tests.integration.recovery.bench_recovery_incident --customers 1000000

Starts a private broker, a throwaway PostgreSQL database and one recovery process; uploads the
customer list in parts (as an operator's tool would), closes it, and follows the progress API
until the incident completes and the outbox has published every event. Prints one JSON line.
Speed is reported here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from shared.devstack import ROOT, ServiceProcess
from shared.embedded_broker import start_mock_cluster
from shared.events.vocabulary import Role
from tests.support.infra import free_port, throwaway_database
from tests.support.stack import operator_token, stack_env


class PeakRss:
    """Samples a process's resident memory in a thread; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.process.memory_info().rss
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            self.samples.append(rss)
            time.sleep(0.5)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def unpublished(url: str) -> int:
    """Outbox rows the relay has not published yet."""
    engine = create_async_engine(url, connect_args={"server_settings": {"search_path": "recovery"}})
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL")) or 0)
    finally:
        await engine.dispose()


async def run(customers: int, part: int, env: dict[str, str], proc: ServiceProcess) -> dict[str, object]:
    """Declare, upload, wait; return the figures."""
    headers = {"Authorization": f"Bearer {operator_token(Role.SUPERVISOR, 'bench')}"}
    async with httpx.AsyncClient(base_url=proc.url, headers=headers, timeout=60) as http:
        started = time.monotonic()
        first = [f"bench-{i:08d}" for i in range(min(part, customers))]
        declared = await http.post(
            "/v1/incidents",
            json={
                "title": "benchmark outage",
                "started_at": datetime.now(UTC).isoformat(),
                "customer_ids": first,
                "more_customers": True,
                "remedy": {"kind": "points", "points": 20000, "description": "outage points"},
            },
        )
        declared.raise_for_status()
        incident_id = declared.json()["incident_id"]
        for start in range(part, customers, part):
            ids = [f"bench-{i:08d}" for i in range(start, min(start + part, customers))]
            (await http.post(f"/v1/incidents/{incident_id}/customers", json={"customer_ids": ids})).raise_for_status()
        uploaded = time.monotonic() - started
        (await http.post(f"/v1/incidents/{incident_id}/complete")).raise_for_status()
        while (view := (await http.get(f"/v1/incidents/{incident_id}")).json())["status"] != "completed":
            await asyncio.sleep(1)
        issued_at = time.monotonic() - started
    while await unpublished(env["DATABASE_URL"]):
        await asyncio.sleep(1)
    published_at = time.monotonic() - started
    return {
        "customers": customers,
        "issued": view["issued"],
        "failed": view["failed"],
        "upload_seconds": round(uploaded, 1),
        "all_issued_seconds": round(issued_at, 1),
        "all_published_seconds": round(published_at, 1),
        "customers_per_second": round(customers / issued_at),
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--part", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=5000, help="RECOVERY_INCIDENT_RATE_PER_SECOND")
    parser.add_argument("--batch", type=int, default=2000, help="RECOVERY_INCIDENT_BATCH_SIZE")
    args = parser.parse_args()
    owner, address = start_mock_cluster()
    with throwaway_database() as url, tempfile.TemporaryDirectory() as tmp:
        env = stack_env(
            url,
            address,
            Path(tmp),
            RECOVERY_INCIDENT_RATE_PER_SECOND=str(args.rate),
            RECOVERY_INCIDENT_BATCH_SIZE=str(args.batch),
            LOG_LEVEL="WARNING",
        )
        subprocess.run(
            [sys.executable, "-m", "shared.migrate", "recovery"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        proc = ServiceProcess("recovery", free_port(), env, Path(tmp) / "recovery.log")
        proc.start()
        try:
            proc.wait_ready()
            assert proc.process is not None
            cpu_before = psutil.Process(proc.process.pid).cpu_times()
            with PeakRss(proc.process.pid) as rss:
                figures = asyncio.run(run(args.customers, args.part, env, proc))
            cpu_after = psutil.Process(proc.process.pid).cpu_times()
            cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
            figures.update(
                recovery_cpu_seconds=round(cpu, 1),
                recovery_cpu_ms_per_1000_customers=round(cpu * 1000 / args.customers * 1000),
                load_average=[round(x, 1) for x in psutil.getloadavg()],
            )
            figures.update(
                rate_limit=args.rate,
                batch=args.batch,
                peak_rss_mb=round(rss.peak / 2**20),
                rss_at_start_mb=round(rss.samples[0] / 2**20) if rss.samples else None,
            )
        finally:
            proc.stop()
    del owner
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
