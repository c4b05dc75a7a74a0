"""Where the time goes: sample a service under load with py-spy (or pyinstrument) and summarize.

    python -m bench.profile intake            # intake alone, closed-loop load
    python -m bench.profile routing           # the stack under load, routing sampled
    python -m bench.profile intake --pyinstrument
    python -m bench.profile intake --rate 55      # the whole stack at 55 complaints/s, intake sampled
    python -m bench.profile routing --queue-page 2000   # routing serving a queue page, 2,000 complaints stored

Writes bench/results/profile-<service>-<stamp>.{txt,speedscope.json} and prints the top frames by
own time and by inclusive time.
"""

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench.census import cpu_seconds
from bench.infra import OPERATOR_SECRET, ROOT
from bench.loadgen import LoadSpec
from bench.scenarios.http import probe_intake
from bench.scenarios.volume import read_samples, wait_routed
from bench.standalone import standalone_stack
from bench.workload import CycleFactory, raw_request
from shared.auth import issue_token
from shared.events.vocabulary import Role

RESULTS = ROOT / "bench" / "results"


def summarize_collapsed(lines: list[str], top: int = 25) -> str:
    """Top frames by own samples and by inclusive samples from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    packages: Counter[str] = Counter()
    for frame, count in own.items():
        packages[_package(frame)] += count
    out = [f"{total} samples", "", "own time by package:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in packages.most_common(15)]
    out += ["", "own time:"]
    out += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    out += ["", "inclusive time:"]
    out += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top * 2)]
    return "\n".join(out)


def _package(frame: str) -> str:
    """Which library or Redress module a py-spy frame (``name (path:line)``) belongs to."""
    _, _, where = frame.partition(" (")
    path = where.split(":", 1)[0]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    parts = path.split("/")
    if not path or path.startswith("<"):
        return "(native / event loop)"
    if parts[0] in ("services", "shared", "bench"):
        return "/".join(parts[:2]).removesuffix(".py")
    return parts[0].removesuffix(".py")


def _profile_pid(pid: int, seconds: float, out: Path) -> str:
    """Record with py-spy; returns the summary text."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    collapsed = out.with_suffix(".collapsed")
    subprocess.run([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
                    "--format", "raw", "--output", str(collapsed), "--nonblocking"], check=True,
                   capture_output=True)
    return summarize_collapsed(collapsed.read_text().splitlines())


def _profile_queue_page(complaints: int, seconds: float, out: Path, logs: Path) -> str:
    """Store ``complaints`` through intake, then load and sample routing serving a queue's first page of 50.

    The page is the fullest queue's, by deadline, read by 8 connections in a closed loop; the CPU per
    page is routing's whole CPU time over the load (its 1 s warm-up included) by the pages answered.
    """
    with standalone_stack(["intake", "routing"], logs) as stack:
        intake, routing = stack.servers
        stack.loadgen.run(LoadSpec("127.0.0.1", intake.port, probe_intake(intake), concurrency=32, duration=600,
                                   warmup=0, max_requests=complaints))
        stored, routed = wait_routed(stack.dsn, timeout=120)
        queue = asyncio.run(read_samples(stack.dsn))["queue"][0]
        token = issue_token(OPERATOR_SECRET, "bench-profiler", Role.SUPERVISOR)
        page = raw_request("GET", f"/v1/queues/{queue}/cases?limit=50", None, {"Authorization": f"Bearer {token}"})
        assert routing.process is not None
        process = psutil.Process(routing.process.pid)
        before = cpu_seconds(process)
        load = stack.loadgen.submit(LoadSpec("127.0.0.1", routing.port, CycleFactory([page]), concurrency=8,
                                             duration=seconds + 4, warmup=1))
        time.sleep(2)
        summary = _profile_pid(process.pid, seconds, out)
        result = load.result()
        per_page = 1000 * (cpu_seconds(process) - before) / max(1, result.ok)
    header = (f"routing serving the first page (50 by deadline) of {queue}, {stored:,} complaints stored and "
              f"{routed:,} routed: {result.throughput:,.1f} pages/s with 8 connections, {result.ok} answered, "
              f"{per_page:.2f} ms of routing's CPU per page\n")
    out.write_text(header + summary)
    return header + summary


def main() -> None:
    """Start what is needed, load it, sample one process, print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=["intake", "routing", "recovery", "loyalty"])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="complaints/s offered (open loop, whole stack); 0 drives intake flat out")
    parser.add_argument("--queue-page", type=int, default=0, metavar="N",
                        help="routing: store N complaints, then sample routing serving its fullest queue's first page")
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    logs = RESULTS / f"profile-{stamp}-logs"
    logs.mkdir()
    if args.queue_page:
        print(_profile_queue_page(args.queue_page, args.seconds, RESULTS / f"profile-routing-queue-{stamp}.txt", logs))
        return
    alone = args.service == "intake" and not args.rate
    names = ["intake"] if alone else ["intake", "routing", "recovery", "loyalty"]
    with standalone_stack(names, logs) as stack:
        intake = stack.servers[0]
        target = next(s for s in stack.servers if s.name == args.service)
        factory = probe_intake(intake)
        spec = LoadSpec("127.0.0.1", intake.port, factory, concurrency=32, duration=args.seconds + 4, warmup=1,
                        rate=args.rate or None)
        load = stack.loadgen.submit(spec)
        time.sleep(2)
        out = RESULTS / f"profile-{args.service}-{stamp}.txt"
        summary = _profile_pid(target.process.pid, args.seconds, out)  # type: ignore[union-attr]
        result = load.result()
        header = f"{args.service} under {result.throughput:,.0f} complaints/s offered to intake\n"
        out.write_text(header + summary)
        print(header + summary)

if __name__ == "__main__":
    main()
