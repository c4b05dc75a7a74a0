"""Console settings: configured operators, refusals at start, a service that is down, stream limits."""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from services.console.passwords import hash_password
from shared.devstack import ROOT, ServiceProcess
from tests.browser.console_stack import (
    DEV_PASSWORD,
    console_env,
    read_until,
    running_console,
    signed_in,
    sse_frames,
    submit_and_route,
)
from tests.support.infra import free_port
from tests.support.stack import Stack

pytestmark = pytest.mark.slow
ANA_PASSWORD = "ana-has-a-long-passphrase"


@pytest.fixture(scope="module")
def console(stack: Stack, artifacts_dir: Path) -> Iterator[ServiceProcess]:
    """A console with its own operator list, loyalty unreachable, a tiny replay ring and one viewer allowed."""
    operators = [{"username": "ana", "role": "manager", "password_hash": hash_password(ANA_PASSWORD),
                  "display_name": "Ana Wu"}]
    with running_console(
        stack, artifacts_dir / "stack-logs", name="console-config",
        CONSOLE_OPERATORS=json.dumps(operators), CONSOLE_LOYALTY_URL=f"http://127.0.0.1:{free_port()}",
        CONSOLE_STREAM_BUFFER_EVENTS="10", CONSOLE_STREAM_MAX_CLIENTS="1",
    ) as proc:
        yield proc


@pytest.fixture
def ana(console: ServiceProcess) -> Iterator[httpx.Client]:
    client = signed_in(console.url, "ana", ANA_PASSWORD)
    yield client
    client.close()


def test_configured_operators_replace_the_development_sign_ins(console: ServiceProcess, ana: httpx.Client) -> None:
    me = ana.get("/v1/session").json()
    dev = httpx.post(console.url + "/v1/session", json={"username": "lead", "password": DEV_PASSWORD})
    about = httpx.get(console.url + "/v1/about").json()
    assert (me["subject"], me["role"], me["display_name"]) == ("ana", "manager", "Ana Wu")
    assert dev.status_code == 401
    assert about["development_signins"] is None and about["development_password"] is None


def test_a_service_that_is_down_shows_as_unavailable_with_the_reason(ana: httpx.Client) -> None:
    overview = ana.get("/v1/services").json()
    kpis = ana.get("/v1/kpis").json()
    proxied = ana.get("/api/loyalty/v1/satisfaction")
    loyalty = next(s for s in overview["services"] if s["name"] == "loyalty")
    by_key = {f["key"]: f for f in kpis["figures"]}
    assert loyalty["ready"] is False and "unreachable" in loyalty["detail"]
    assert by_key["csat_percent"]["available"] is False
    assert "loyalty is unreachable" in by_key["csat_percent"]["reason"]
    assert "value" not in by_key["csat_percent"]
    assert by_key["resolution_rate"]["available"] is True  # routing still answers
    assert proxied.status_code == 502
    assert proxied.headers["content-type"] == "application/problem+json"
    assert proxied.json()["type"].endswith("/upstream-unavailable")


def test_story_still_tells_the_events_when_a_service_is_down(ana: httpx.Client, stack: Stack) -> None:
    routed = submit_and_route(stack)
    story = ana.get(f"/v1/complaints/{routed.complaint_id}/story").json()
    assert story["sources"]["loyalty"]["ok"] is False
    assert story["sources"]["routing"]["ok"] is True
    assert "complaint.received.v1" in [e["type"] for e in story["timeline"]]


def test_the_stream_refuses_viewers_beyond_its_limit(ana: httpx.Client) -> None:
    with ana.stream("GET", "/v1/stream", params={"backlog": 0}) as first:
        frames = sse_frames(first)  # kept referenced: dropping the reader would close the connection
        read_until(frames, lambda seen: bool(seen))
        second = ana.get("/v1/stream")
    assert second.status_code == 503
    assert second.json()["type"].endswith("/stream-full")
    assert int(second.headers["retry-after"]) > 0


def test_a_client_away_longer_than_the_replay_ring_is_told_what_it_lost(ana: httpx.Client, stack: Stack) -> None:
    def newest() -> int:
        return int(ana.get("/v1/services").json()["stream"]["last_id"].rsplit("-", 1)[1])

    with ana.stream("GET", "/v1/stream", params={"backlog": 0}) as response:
        [hello] = read_until(sse_frames(response), lambda seen: bool(seen))
    away_from = int(hello.json()["last_id"].rsplit("-", 1)[1])
    deadline = time.monotonic() + 60
    while newest() <= away_from + 11 and time.monotonic() < deadline:  # more than the ring of 10 keeps
        submit_and_route(stack)
    with ana.stream("GET", "/v1/stream", headers={"Last-Event-ID": hello.json()["last_id"]}) as response:
        frames = read_until(sse_frames(response), lambda seen: len(seen) >= 2, timeout=10)
    assert frames[0].event == "hello"
    assert frames[1].event == "gap" and frames[1].json()["missed"] > 0


def _start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import services.console.app"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_production_refuses_to_start_without_operators(stack: Stack) -> None:
    env = {**console_env(stack), "ENVIRONMENT": "production", "OPERATOR_TOKEN_SECRET": "p" * 40}
    result = _start(env)
    assert result.returncode != 0
    assert "CONSOLE_OPERATORS" in result.stderr and "refused in production" in result.stderr


@pytest.mark.parametrize(("extra", "message"), [
    ({"CONSOLE_OPERATORS": '[{"username": "ana", "role": "manager", "password_hash": "plain"}]'},
     "OPERATORS.0.PASSWORD_HASH"),
    ({"CONSOLE_OPERATORS": '[{"username": "ana", "role": "owner", "password_hash": "plain"}]'}, "OPERATORS.0.ROLE"),
    ({"CONSOLE_OPERATORS_FILE": "/nonexistent/operators.yaml"}, "cannot read /nonexistent/operators.yaml"),
    ({"CONSOLE_ROUTING_URL": "routing:8002"}, "CONSOLE_ROUTING_URL"),
    ({"CONSOLE_SESSION_HOURS": "0"}, "CONSOLE_SESSION_HOURS"),
])
def test_bad_settings_stop_the_start_with_the_field_named(stack: Stack, extra: dict[str, str], message: str) -> None:
    result = _start({**console_env(stack), **extra})
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_operators_file_is_read(stack: Stack, tmp_path: Path, artifacts_dir: Path) -> None:
    path = tmp_path / "operators.yaml"
    entry = {"username": "bo", "role": "agent", "password_hash": hash_password("bo-passphrase")}
    path.write_text(yaml.safe_dump({"operators": [entry]}))
    with running_console(stack, artifacts_dir / "stack-logs", name="console-file",
                         CONSOLE_OPERATORS_FILE=str(path)) as proc:
        bo = signed_in(proc.url, "bo", "bo-passphrase")
        try:
            assert bo.get("/v1/session").json()["role"] == "agent"
        finally:
            bo.close()


def test_losing_the_broker_shows_on_the_page_and_in_readiness(stack: Stack, tmp_path: Path,
                                                               artifacts_dir: Path) -> None:
    address_file = tmp_path / "broker.txt"
    broker = subprocess.Popen([sys.executable, "-m", "shared.embedded_broker", "--address-file", str(address_file)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not address_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = address_file.read_text().strip()
        with running_console(stack, artifacts_dir / "stack-logs", name="console-broker-loss",
                             KAFKA_BOOTSTRAP_SERVERS=address) as proc:
            lead = signed_in(proc.url)
            try:
                assert lead.get("/v1/services").json()["stream"]["status"] == "live"
                broker.terminate()
                broker.wait(10)
                deadline = time.monotonic() + 30
                while lead.get("/v1/services").json()["stream"]["status"] == "live" and time.monotonic() < deadline:
                    time.sleep(0.2)
                stream = lead.get("/v1/services").json()["stream"]
                ready = httpx.get(proc.url + "/readyz")
            finally:
                lead.close()
    finally:
        broker.kill()
        broker.wait()
    assert stream["status"] == "reconnecting" and "broker unavailable" in stream["error"]
    assert ready.status_code == 503 and ready.headers["content-type"] == "application/problem+json"
