"""The console's live stream (Server-Sent Events): filters, resuming after a reconnect, bounds, bad input."""

import signal
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from services.console.filters import LiveEvent, StreamFilter
from services.console.hub import Subscription
from shared.auth import issue_token
from shared.devstack import ServiceProcess
from shared.events.vocabulary import Role
from tests.browser.console_stack import (
    Frame,
    events_of,
    read_until,
    running_console,
    signed_in,
    sse_frames,
    submit_and_route,
)
from tests.support.infra import TEST_OPERATOR_SECRET
from tests.support.stack import Stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def console(stack: Stack, artifacts_dir: Path) -> Iterator[ServiceProcess]:
    with running_console(stack, artifacts_dir / "stack-logs", name="console-stream") as proc:
        yield proc


@pytest.fixture
def lead(console: ServiceProcess) -> Iterator[httpx.Client]:
    client = signed_in(console.url)
    yield client
    client.close()


def _has(complaint_id: str, event_type: str) -> Callable[[list[Frame]], bool]:
    return lambda frames: any(e["type"] == event_type and e["correlationid"] == complaint_id for e in events_of(frames))


def _until_keepalive(frames: Iterator[Frame]) -> list[Frame]:
    """Frames up to the first keep-alive: everything the server had to send at once (hello, gap, replay)."""
    seen = []
    for frame in frames:
        if frame.event == "comment":
            return seen
        seen.append(frame)
    return seen


def test_stream_shows_a_complaint_submitted_while_watching(lead: httpx.Client, stack: Stack) -> None:
    with lead.stream("GET", "/v1/stream", params={"backlog": 0}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = sse_frames(response)
        [hello] = read_until(frames, lambda seen: bool(seen))
        routed = submit_and_route(stack)
        seen = read_until(frames, _has(routed.complaint_id, "case.routed.v1"))
    events = [e for e in events_of(seen) if e["correlationid"] == routed.complaint_id]
    assert hello.event == "hello" and hello.json()["status"] == "live"
    assert [e["type"] for e in events][:2] == ["complaint.received.v1", "case.routed.v1"]
    received = events[0]
    assert received["customer"] == routed.customer_id
    assert dict(map(tuple, received["facts"]))["channel"] == "web"
    assert all(f.id and f.id.startswith(hello.json()["last_id"].split("-")[0]) for f in seen if f.event == "message")


def test_complaint_filter_shows_only_that_complaints_chain(lead: httpx.Client, stack: Stack) -> None:
    first = submit_and_route(stack)
    with lead.stream("GET", "/v1/stream", params={"complaint": first.complaint_id, "backlog": 100}) as response:
        frames = sse_frames(response)
        seen = read_until(frames, _has(first.complaint_id, "case.routed.v1"))
        other = submit_and_route(stack)
        with stack.client("routing", Role.AGENT) as routing:
            assert routing.post(f"/v1/cases/{first.case_id}/acknowledge").is_success
        seen += read_until(frames, _has(first.complaint_id, "case.acknowledged.v1"))
    events = events_of(seen)
    assert {e["correlationid"] for e in events} == {first.complaint_id}
    assert other.complaint_id not in str(seen)
    assert [e["type"] for e in events][-1] == "case.acknowledged.v1"


def test_type_severity_and_queue_filters(lead: httpx.Client, stack: Stack) -> None:
    routed = submit_and_route(stack)
    severity, queue = routed.case["severity"], routed.case["queue"]
    other_severity = next(s for s in ("P1", "P2", "P3", "P4") if s != severity)
    with lead.stream("GET", "/v1/stream", params={"complaint": routed.complaint_id, "backlog": 100}) as response:
        read_until(sse_frames(response), _has(routed.complaint_id, "case.routed.v1"))

    def replay(**params: str) -> list[str]:
        query = {"complaint": routed.complaint_id, "backlog": 100, **params}
        with lead.stream("GET", "/v1/stream", params=query) as response:
            return [e["type"] for e in events_of(_until_keepalive(sse_frames(response)))]

    assert replay(type="case") == ["case.routed.v1"]
    assert replay(type="complaint.*") == ["complaint.received.v1"]
    assert replay(type="complaint.received.v1,case.routed") == ["complaint.received.v1", "case.routed.v1"]
    # The complaint's own event carries no severity or queue: it matches once its case is known.
    assert "case.routed.v1" in replay(severity=severity)
    assert replay(severity=other_severity) == []
    assert "case.routed.v1" in replay(queue=queue)
    assert replay(queue="no_such_queue") == []
    assert replay(customer=routed.customer_id) == ["complaint.received.v1", "case.routed.v1"]
    assert replay(customer="someone-else") == []


def test_a_reconnecting_client_gets_what_it_missed(lead: httpx.Client, stack: Stack) -> None:
    with lead.stream("GET", "/v1/stream", params={"backlog": 0}) as response:
        [hello] = read_until(sse_frames(response), lambda seen: bool(seen))
    last_seen = hello.json()["last_id"]
    routed = submit_and_route(stack)  # happens while the browser is away
    deadline = time.monotonic() + 20
    while True:
        with lead.stream("GET", "/v1/stream", headers={"Last-Event-ID": last_seen},
                         params={"complaint": routed.complaint_id}) as response:
            replayed = _until_keepalive(sse_frames(response))
        types = [e["type"] for e in events_of(replayed)]
        if "case.routed.v1" in types or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert types[:2] == ["complaint.received.v1", "case.routed.v1"]
    assert "gap" not in [f.event for f in replayed]


def test_an_unknown_last_event_id_starts_afresh(lead: httpx.Client) -> None:
    with lead.stream("GET", "/v1/stream", headers={"Last-Event-ID": "deadbeef-12"}, params={"backlog": 0}) as response:
        frames = _until_keepalive(sse_frames(response))
    assert [f.event for f in frames] == ["hello"]


def test_stream_ends_when_the_session_expires(console: ServiceProcess) -> None:
    token = issue_token(TEST_OPERATOR_SECRET, "lead", Role.SUPERVISOR, timedelta(seconds=2))
    with httpx.stream("GET", console.url + "/v1/stream", headers={"Authorization": f"Bearer {token}"},
                      params={"backlog": 0}, timeout=30) as response:
        seen = read_until(sse_frames(response), lambda frames: frames[-1].event == "expired")
    assert "sign in again" in seen[-1].json()["reason"]


@pytest.mark.parametrize(("params", "field"), [
    ({"severity": "P9"}, "query.severity"),
    ({"backlog": "501"}, "query.backlog"),
    ({"backlog": "-1"}, "query.backlog"),
    ({"type": "case;drop"}, "query.type"),
    ({"complaint": "a b"}, "query.complaint"),
    ({"queue": "Billing!"}, "query.queue"),
])
def test_stream_bad_filters_are_problems(lead: httpx.Client, params: dict, field: str) -> None:
    response = lead.get("/v1/stream", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_a_slow_browser_loses_its_oldest_events_not_the_console_memory() -> None:
    sub = Subscription(StreamFilter(), maxsize=3)
    for seq in range(1, 8):
        sub.offer(LiveEvent(seq=seq, kind="event", type="case.routed.v1", topic="t", partition=0, offset=seq))
    kept = [sub.queue.get_nowait().seq for _ in range(sub.queue.qsize())]
    assert kept == [5, 6, 7]
    assert sub.dropped == 4


def test_stopping_the_console_tells_browsers_to_reconnect(stack: Stack, artifacts_dir: Path) -> None:
    with running_console(stack, artifacts_dir / "stack-logs", name="console-sigterm") as proc:
        lead = signed_in(proc.url)
        try:
            with lead.stream("GET", "/v1/stream", params={"backlog": 0}) as response:
                frames = sse_frames(response)
                read_until(frames, lambda seen: bool(seen))
                proc.process.send_signal(signal.SIGTERM)
                seen = read_until(frames, lambda got: got[-1].event == "closing")
        finally:
            lead.close()
        proc.process.wait(timeout=20)  # it stops by itself: open streams do not hold the shutdown
        log = proc.log_tail(10)
    assert seen[-1].json()["reason"] == "the console is restarting"
    assert "console stopped" in log
