"""Starts the whole stack on one machine: embedded broker, migrations, the services.

``make run`` calls ``python -m shared.devstack``; the end-to-end tests use the same launcher.
Ctrl-C (or SIGTERM) stops every process cleanly.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.embedded_broker import start_mock_cluster

DEFAULT_PORTS = {"intake": 8001, "routing": 8002, "recovery": 8003, "loyalty": 8004, "console": 8000}
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ServiceProcess:
    """One service running under uvicorn."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Base URL of the service."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start uvicorn for this service (output to its log file, if any)."""
        out = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - kept open for the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", f"services.{self.name}.app:app", "--host", "127.0.0.1",
             "--port", str(self.port), "--no-access-log", "--timeout-graceful-shutdown", "10"],
            cwd=ROOT, env=self.env, stdout=out or subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until /readyz answers 200; raise with the log tail if the process died or timed out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout}s: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Send ``sig`` and wait; kill if it does not exit in time."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the service's log."""
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def migrate(env: dict[str, str]) -> None:
    """Upgrade every service's schema."""
    subprocess.run([sys.executable, "-m", "shared.migrate", "all"], cwd=ROOT, env=env, check=True)


def main(argv: list[str] | None = None) -> None:
    """Run the stack in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="Run the Redress stack on embedded defaults.")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DATA_DIR", ROOT / "data")))
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("DATA_DIR", str(args.data_dir))
    owner = None
    if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
        owner, address = start_mock_cluster()
        env["KAFKA_BOOTSTRAP_SERVERS"] = address
        # The CLI (`redress watch`, `lag`, `dlq`) finds the embedded broker here.
        (args.data_dir / "broker.txt").write_text(address + "\n")
        print(f"embedded Kafka-protocol broker  {address}")
    migrate(env)
    db = env.get("DATABASE_URL") or f"SQLite files in {args.data_dir}"
    print(f"database                        {db}")
    procs = [
        ServiceProcess(name, port, env, args.data_dir / f"{name}.log") for name, port in DEFAULT_PORTS.items()
    ]
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.wait_ready()
            print(f"{proc.name:<31} {proc.url}  (docs {proc.url}/docs, log {proc.log_path})")
        print("Redress is running. Ctrl-C stops it.", flush=True)
        while not stopping and all(p.process and p.process.poll() is None for p in procs):
            time.sleep(0.5)
    finally:
        for proc in procs:
            proc.stop()
        if owner is not None:
            (args.data_dir / "broker.txt").unlink(missing_ok=True)
        del owner
        print("stopped")


if __name__ == "__main__":
    main()
