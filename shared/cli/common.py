"""What every ``redress`` subcommand shares: exit codes, errors that say what to do, the broker
address, colours, progress on stderr and running a coroutine with clean Ctrl-C handling."""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TextIO

from aiokafka.errors import KafkaConnectionError, KafkaError

# Exit codes (documented in docs/operators-cli.md).
OK = 0
FAILED = 1  # the command ran and found a problem: not found, refused, lag above the limit
BAD_INPUT = 2  # a usage error or a bad file (argparse uses 2 as well)
UNREACHABLE = 3  # the broker or a service did not answer
INTERRUPTED = 130

CONNECT_TIMEOUT = 10.0


class CliError(Exception):
    """An error to show the operator as one message (with what to do next) and an exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def add_bootstrap(parser: argparse.ArgumentParser) -> None:
    """The ``--bootstrap`` option of commands that read the broker."""
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS, else $DATA_DIR/broker.txt)",
    )


def bootstrap_servers(args: argparse.Namespace) -> str:
    """The broker address from ``--bootstrap``, ``KAFKA_BOOTSTRAP_SERVERS`` or ``$DATA_DIR/broker.txt``."""
    if getattr(args, "bootstrap", None):
        return str(args.bootstrap)
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    path = Path(os.environ.get("DATA_DIR", "data")) / "broker.txt"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    raise CliError(
        "no broker address: pass --bootstrap HOST:PORT or set KAFKA_BOOTSTRAP_SERVERS "
        f"(`make run` prints its broker's address; {path} does not exist)",
        UNREACHABLE,
    )


def unreachable(bootstrap: str, exc: BaseException) -> CliError:
    """The error for a broker that does not answer, with what to do next."""
    return CliError(
        f"cannot reach the Kafka broker at {bootstrap} ({type(exc).__name__}: {exc}). "
        "Start the stack with `make run`, or set KAFKA_BOOTSTRAP_SERVERS / --bootstrap to a running broker.",
        UNREACHABLE,
    )


async def start_client(client: Any, bootstrap: str) -> None:
    """Start an aiokafka client, turning connection failures into a clear CliError."""
    try:
        await asyncio.wait_for(client.start(), CONNECT_TIMEOUT)
    except (KafkaConnectionError, KafkaError, OSError, TimeoutError) as exc:
        with contextlib.suppress(Exception):
            await client.stop()
        raise unreachable(bootstrap, exc) from exc


def use_color(args: argparse.Namespace, stream: TextIO = sys.stdout) -> bool:
    """Colours on a terminal unless ``--no-color`` or ``NO_COLOR`` says otherwise."""
    if getattr(args, "no_color", False) or os.environ.get("NO_COLOR"):
        return False
    return stream.isatty()


class Palette:
    """ANSI colours, or nothing when disabled."""

    CODES = {
        "dim": "2", "bold": "1", "red": "31", "green": "32", "yellow": "33", "blue": "34",
        "magenta": "35", "cyan": "36", "bright_red": "1;31",
    }

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, style: str | None) -> str:
        if not self.enabled or not style:
            return text
        return f"\033[{self.CODES[style]}m{text}\033[0m"


class Progress:
    """Progress of a long run on stderr: rewritten in place on a terminal, a line every few seconds otherwise."""

    def __init__(self, what: str, total: int | None = None, stream: TextIO = sys.stderr, every: float = 5.0) -> None:
        self.what = what
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.every = 0.2 if self.tty else every
        self.count = 0
        self._started = self._last = time.monotonic()
        self._shown = False

    def update(self, count: int) -> None:
        """Report ``count`` done so far (printed at most every ``every`` seconds)."""
        self.count = count
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._shown = True
            self._write(self._text(), final=False)

    def done(self, note: str = "") -> None:
        """The final line, when the run was long enough to show progress at all."""
        if self._shown:
            self._write(self._text() + (f"; {note}" if note else ""), final=True)

    def _text(self) -> str:
        of = f"/{self.total}" if self.total is not None else ""
        return f"{self.what}: {self.count}{of}"

    def _write(self, text: str, *, final: bool) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def note(text: str) -> None:
    """A status line for the operator on stderr (stdout stays clean for piping)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def print_json(value: Any) -> None:
    """One JSON document on stdout."""
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def run(coro: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine; Ctrl-C or SIGTERM stop it cleanly (exit 130)."""

    async def main() -> int:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Loops that cannot take signal handlers (Windows, a thread other than the main one) keep the
            # default: Ctrl-C still stops the command, only not as cleanly.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            return INTERRUPTED

    return asyncio.run(main())
