"""Infrastructure the fault tests can break: a broker process and a private PostgreSQL cluster."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared.devstack import ROOT
from tests.support.infra import free_port

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


class BrokerProcess:
    """The embedded broker in its own process, so a test can freeze it (gone) and thaw it (back)."""

    def __init__(self, workdir: Path) -> None:
        self.address_file = workdir / "broker.txt"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start it; returns the bootstrap address."""
        self.address_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shared.embedded_broker", "--address-file", str(self.address_file)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            if self.address_file.exists() and self.address_file.read_text().strip():
                return self.address_file.read_text().strip()
            time.sleep(0.05)
        raise TimeoutError("embedded broker did not start")

    def pause(self) -> None:
        """The broker stops answering (as a hung or partitioned broker does)."""
        assert self.process
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """The broker answers again, with its data intact."""
        assert self.process
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """End it."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(10)


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, on a free port, that the test may restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redress-pg-"))
        self.data = self.dir / "data"
        self.socket_dir = self.dir / "sock"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of its ``postgres`` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True)

    def start(self) -> None:
        """initdb (first time) and start."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        if not self.data.exists():
            self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                              "-E", "UTF8", "--no-sync")
        self._pg_ctl("start", "-w", "-l", str(self.dir / "log"),
                     "-o", f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off")

    def _pg_ctl(self, *args: str) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args)

    def stop(self, mode: str = "fast") -> None:
        """Stop (``immediate`` is a crash)."""
        self._pg_ctl("stop", "-w", "-m", mode)

    def restart(self, down_seconds: float = 2.0, mode: str = "immediate") -> None:
        """Go down (crash by default), stay down a while, come back."""
        self.stop(mode)
        time.sleep(down_seconds)
        self._pg_ctl("start", "-w", "-l", str(self.dir / "log"),
                     "-o", f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off")

    def destroy(self) -> None:
        """Stop and remove everything."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
