"""``make bench``: set up PostgreSQL and the broker, run every scenario, print and write the table."""

import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.context import Bench, Plan
from bench.infra import ROOT, git_commit, machine, migrate_all, stack_env, throwaway_database
from bench.loadgen import LoadGenerator
from bench.report import markdown_report, text_table
from shared.embedded_broker import start_mock_cluster

RESULTS = ROOT / "bench" / "results"


def _postgres_version(dsn: str) -> str:
    try:
        out = subprocess.run(["psql", dsn, "-tAc", "SHOW server_version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def scenarios() -> list[tuple[str, Callable[[Bench], None]]]:
    """Every scenario, in the order they run (ceilings first: everything is compared with them)."""
    from bench.scenarios import http, incident, pipeline, timers, volume

    return [
        ("ceilings", http.measure_ceilings),
        # Volume starts from an empty database; intake alone goes after the pipeline, because its
        # complaints reach the broker too and a routing started later would begin behind them.
        ("volume", volume.measure_volume),
        ("pipeline", pipeline.measure_pipeline),
        ("intake", http.measure_intake),
        ("timers", timers.measure_timers),
        ("incident", incident.measure_incident),
    ]


def main() -> None:
    """Run the benchmark; exit status 0 even when aims are missed (the table says so), 1 on a crash."""
    plan = Plan.from_env()
    only = {s for s in os.environ.get("BENCH_ONLY", "").split(",") if s}
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    logs = RESULTS / f"{stamp}-logs"
    logs.mkdir()
    meta = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "mode": plan.name, "commit": git_commit(),
            **machine()}
    meta["load"] = (f"separate generator process, closed loop, {plan.concurrency} keep-alive connections, "
                    f"{plan.warmup:g} s warm-up + {plan.duration:g} s, median of {plan.runs} runs (min..max)")
    print(f"Redress benchmark ({plan.name}) on {meta['cpu']}, {meta['nproc']} cores; logs in {logs}", flush=True)
    failed = False
    broker_owner, bootstrap = start_mock_cluster()
    loadgen = LoadGenerator()
    try:
        with throwaway_database() as (database_url, dsn):
            meta["postgres"] = _postgres_version(dsn)
            env = stack_env(database_url, bootstrap, logs)
            migrate_all(env)
            bench = Bench(plan, database_url, dsn, bootstrap, env, logs, loadgen)
            for name, scenario in scenarios():
                if only and name not in only:
                    continue
                print(f"[{time.monotonic() - started:5.0f}s] {name}", flush=True)
                try:
                    scenario(bench)
                except Exception as exc:
                    failed = True
                    bench.note(f"{name} failed: {type(exc).__name__}: {exc}")
                    traceback.print_exc()
                finally:
                    for server in bench.stack.values():
                        server.stop()
                    bench.stack.clear()
    finally:
        loadgen.close()
        del broker_owner
    meta["elapsed_s"] = time.monotonic() - started
    write_results(stamp, meta, bench)
    if plan.name == "full" and not only:
        # The committed summary: the latest complete full run.
        (ROOT / "bench" / "RESULTS.md").write_text(markdown_report(meta, bench.rows, bench.notes))
        print("bench/RESULTS.md updated: commit it with the change it measures")
    sys.exit(1 if failed else 0)


def write_results(stamp: str, meta: dict[str, object], bench: Bench) -> None:
    """Print the table and write results/<stamp>.json and .md."""
    print()
    print(text_table(bench.rows))
    for note in bench.notes:
        print(f"- {note}")
    doc = {"meta": meta, "ceilings": {k: v.__dict__ for k, v in bench.ceilings.items()},
           "rows": [r.to_json() for r in bench.rows], "notes": bench.notes, "raw": bench.raw}
    json_path = RESULTS / f"{stamp}.json"
    json_path.write_text(json.dumps(doc, indent=2, default=str))
    md_path = RESULTS / f"{stamp}.md"
    md_path.write_text(markdown_report(meta, bench.rows, bench.notes))
    print(f"\nwritten: {json_path.relative_to(Path.cwd()) if json_path.is_relative_to(Path.cwd()) else json_path}"
          f" and {md_path.name}")
