"""Running the operator console as a real uvicorn process next to a test stack."""

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shared.devstack import ServiceProcess
from shared.events.vocabulary import Role
from tests.support.complaints import submit, web_complaint
from tests.support.infra import free_port
from tests.support.stack import Stack

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DEV_PASSWORD = "redress-dev"
SERVICES = ("intake", "routing", "recovery", "loyalty")


def console_env(stack: Stack, **extra: str) -> dict[str, str]:
    """The stack's environment plus the services' URLs for the console (and ``extra``)."""
    env = {k: v for k, v in stack.env.items() if not k.startswith("CONSOLE_")}
    env.update({f"CONSOLE_{name.upper()}_URL": stack.url(name) for name in SERVICES})
    env.update(CONSOLE_STREAM_HEARTBEAT_SECONDS="1", CONSOLE_STREAM_FETCH_MAX_WAIT_MS="10")
    env.update(extra)
    return env


@contextmanager
def running_console(stack: Stack, log_dir: Path, name: str = "console", **extra: str) -> Iterator[ServiceProcess]:
    """Start the console on a free port, wait until it is ready, stop it afterwards."""
    log_dir.mkdir(parents=True, exist_ok=True)
    proc = ServiceProcess("console", free_port(), console_env(stack, **extra), log_dir / f"{name}.log")
    proc.start()
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def signed_in(url: str, username: str = "lead", password: str = DEV_PASSWORD) -> httpx.Client:
    """An HTTP client holding a console session cookie."""
    client = httpx.Client(base_url=url, timeout=15)
    response = client.post("/v1/session", json={"username": username, "password": password})
    response.raise_for_status()
    return client


@dataclass
class Frame:
    """One Server-Sent Events frame (``comment`` for a keep-alive line)."""

    event: str
    data: str = ""
    id: str | None = None

    def json(self) -> Any:
        """The frame's data as JSON."""
        return json.loads(self.data)


def sse_frames(response: httpx.Response) -> Iterator[Frame]:
    """Frames of a streaming response, keep-alives included (so readers can check their deadline)."""
    event, data, event_id = "message", [], None
    for line in response.iter_lines():
        if line.startswith(":"):
            yield Frame("comment")
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line == "" and (data or event != "message"):
            yield Frame(event, "\n".join(data), event_id)
            event, data, event_id = "message", [], None


def read_until(frames: Iterator[Frame], done: Callable[[list[Frame]], bool], timeout: float = 20) -> list[Frame]:
    """Collect frames until ``done(collected)`` holds; AssertionError with what was seen on timeout."""
    seen: list[Frame] = []
    deadline = time.monotonic() + timeout
    for frame in frames:
        if frame.event != "comment":
            seen.append(frame)
        if done(seen):
            return seen
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"stream ended or timed out; saw {[(f.event, f.data[:80]) for f in seen][-15:]}")


def events_of(frames: list[Frame]) -> list[dict[str, Any]]:
    """The event payloads among frames."""
    return [f.json() for f in frames if f.event == "message"]


@dataclass
class Routed:
    """A complaint submitted through intake and the case routing opened for it."""

    complaint_id: str
    customer_id: str
    case: dict[str, Any]

    @property
    def case_id(self) -> str:
        """The case's id."""
        return str(self.case["case_id"])


def submit_and_route(stack: Stack, text: str | None = None, timeout: float = 30) -> Routed:
    """Submit a complaint like a channel does and wait until routing lists its case."""
    body = web_complaint(text=text) if text else web_complaint()
    accepted = submit(stack, body)
    assert accepted.status_code == 202, accepted.text
    complaint_id = accepted.json()["complaint_id"]
    deadline = time.monotonic() + timeout
    with stack.client("routing", Role.AGENT) as routing:
        while time.monotonic() < deadline:
            found = routing.get("/v1/cases", params={"customer_id": body["customer_id"]}).json()["items"]
            if found:
                return Routed(complaint_id, body["customer_id"], found[0])
            time.sleep(0.1)
    raise AssertionError(f"routing opened no case for complaint {complaint_id} within {timeout}s")
