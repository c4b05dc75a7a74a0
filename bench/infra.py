"""The benchmark's own infrastructure: a throwaway PostgreSQL database, the embedded broker, uvicorn processes."""

import asyncio
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("BENCH_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
OPERATOR_SECRET = "bench-operator-secret-0123456789abcdef"
SERVICES = ("intake", "routing", "recovery", "loyalty")
FETCH_MAX_WAIT_MS = os.environ.get("BENCH_FETCH_MAX_WAIT_MS", "5")
PRIVATE_LOG: Path | None = None  # the private cluster's server log, while it runs


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def admin(sql: str, dsn: str = ADMIN_DSN) -> None:
    """Run one statement on the admin database."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@contextmanager
def private_cluster() -> Iterator[str | None]:
    """A PostgreSQL cluster of the benchmark's own (yields its admin DSN), or None when it cannot be made.

    The machine's shared cluster serves every test run on this machine: its connection slots run out
    and fault tests restart it. A private one (initdb in a temporary folder, a free port, stopped and
    deleted afterwards) keeps those out of the figures. BENCH_POSTGRES_ADMIN_DSN skips it.
    """
    bin_dir = _pg_bin()
    if os.environ.get("BENCH_POSTGRES_ADMIN_DSN") or bin_dir is None:
        yield None
        return
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="redress-bench-pg-"))
    if as_postgres:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    run = subprocess.run
    try:
        run([*as_postgres, str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
        options = (f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=300 "
                   "-c shared_buffers=256MB -c fsync=on -c synchronous_commit=on "
                   "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all "
                   # Extra server options for a trial, e.g. "-c auto_explain.log_min_duration=5 ...".
                   + os.environ.get("BENCH_PG_OPTIONS", ""))
        run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-o", options, "-l",
             str(data / "postgres.log"), "-w", "start"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"private PostgreSQL cluster unavailable ({exc}); using {ADMIN_DSN}", flush=True)
        shutil.rmtree(data, ignore_errors=True)
        yield None
        return
    global PRIVATE_LOG
    PRIVATE_LOG = data / "postgres.log"
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        PRIVATE_LOG = None
        run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
            capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


@contextmanager
def throwaway_database() -> Iterator[tuple[str, str]]:
    """Create a fresh database (on a private cluster when possible); yield (SQLAlchemy URL, asyncpg DSN)."""
    with private_cluster() as private:
        admin_dsn = private or ADMIN_DSN
        name = f"redress_bench_{uuid.uuid4().hex[:10]}"
        asyncio.run(admin(f'CREATE DATABASE "{name}"', admin_dsn))
        base = admin_dsn.rsplit("/", 1)[0]
        try:
            yield base.replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}", f"{base}/{name}"
        finally:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', admin_dsn))


def stack_env(database_url: str, bootstrap: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for the services under benchmark: low fetch wait (the embedded broker needs it), INFO logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTAKE_", "ROUTING_", "RECOVERY_", "LOYALTY_"))}
    env.update(
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        OPERATOR_TOKEN_SECRET=OPERATOR_SECRET,
        DATA_DIR=str(data_dir),
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    for name in SERVICES:
        prefix = name.upper()
        # The embedded broker answers a waiting fetch only when the wait runs out (TOOLING.md);
        # a real broker answers at once. A short wait keeps the mock's artefact out of the latency
        # figures, but every idle consumer then polls that often (BENCH_FETCH_MAX_WAIT_MS to compare).
        env[f"{prefix}_KAFKA_FETCH_MAX_WAIT_MS"] = FETCH_MAX_WAIT_MS
        env[f"{prefix}_KAFKA_ASSIGNOR_DELAY_MS"] = "0"
        # One benchmark agent resolves hundreds of cases a second: lift the per-operator limit.
        env[f"{prefix}_OPERATOR_RATE_PER_SECOND"] = "1000000"
        env[f"{prefix}_OPERATOR_RATE_BURST"] = "1000000"
    env.update(extra)
    return env


def migrate_all(env: dict[str, str]) -> None:
    """Upgrade every service's schema."""
    subprocess.run([sys.executable, "-m", "shared.migrate", "all"], cwd=ROOT, env=env, check=True,
                   capture_output=True)


@dataclass
class Server:
    """One uvicorn server (a service or a ceiling), possibly with several workers."""

    name: str
    app: str
    env: dict[str, str]
    log_path: Path
    workers: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/readyz", timeout: float = 90) -> "Server":
        """Start uvicorn and wait until ``ready_path`` answers 200."""
        out = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps writing to it
        cmd = [sys.executable, "-m", "uvicorn", self.app, "--host", "127.0.0.1", "--port", str(self.port),
               "--no-access-log", "--timeout-graceful-shutdown", "10", "--log-level", "warning"]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        self.process = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(self.url + ready_path, timeout=2).status_code == 200:
                    if self.workers > 1:
                        time.sleep(2)  # let every worker finish its start-up, not only the first
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout}s: {self.log_tail()}")

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL if it does not leave in time."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def processes(self) -> list[psutil.Process]:
        """The uvicorn process and its workers."""
        if not self.process or self.process.poll() is not None:
            return []
        try:
            parent = psutil.Process(self.process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_mib(self) -> float:
        """Largest resident size among its processes (each worker is its own process), MiB."""
        sizes = []
        for proc in self.processes():
            try:
                sizes.append(proc.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                continue
        return max(sizes, default=0.0)

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server and its workers."""
        total = 0.0
        for proc in self.processes():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return total

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of its log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def postgres_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving one database (they are separate processes)."""
    seconds: dict[int, float] = {}
    for proc in psutil.process_iter(["pid", "cmdline", "cpu_times"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if cmdline.startswith("postgres:") and f" {database} " in f"{cmdline} ":
            times = proc.info["cpu_times"]
            if times:
                seconds[proc.info["pid"]] = times.user + times.system
    return seconds


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two snapshots by backends alive at the second (a new one counts whole)."""
    return sum(max(0.0, used - before.get(pid, 0.0)) for pid, used in after.items())


def machine() -> dict[str, Any]:
    """What this machine is: CPU model, cores, memory, load."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }


def git_commit() -> str:
    """The commit under benchmark (with a + when the work tree differs)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
