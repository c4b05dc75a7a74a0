"""The `redress` CLI against the running stack: watch, follow, dlq, lag, whatif from recorded events."""

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from shared.devstack import ROOT
from shared.envelope import Envelope, to_kafka
from shared.events.vocabulary import Channel, Role
from shared.topics import Topic
from tests.support.complaints import submit, web_complaint
from tests.support.events import EventTap
from tests.support.infra import free_port
from tests.support.stack import Stack
from tests.unit.operators.recorded import ROUTING_PINNED, policy_file

pytestmark = pytest.mark.slow


def cli_env(broker: str, stack: Stack | None = None) -> dict[str, str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker}
    if stack is not None:
        env["REDRESS_INTAKE_URL"] = stack.url("intake")
        env["INTAKE_CHANNEL_KEYS"] = stack.env["INTAKE_CHANNEL_KEYS"]  # the keys intake was started with
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `redress ...` to completion."""
    return subprocess.run([sys.executable, "-m", "shared.cli.main", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)


class Running:
    """A long-running `redress` command whose output lines are collected as they come."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "shared.cli.main", *args], cwd=ROOT, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1)
        self.out: list[tuple[float, str]] = []
        self.err: list[str] = []
        self._lines: queue.Queue[tuple[str, float, str]] = queue.Queue()
        for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            threading.Thread(target=self._read, args=(name, stream), daemon=True).start()

    def _read(self, name: str, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self._lines.put((name, time.monotonic(), line.rstrip("\n")))

    def _drain(self) -> None:
        while True:
            try:
                name, at, line = self._lines.get_nowait()
            except queue.Empty:
                return
            (self.out.append((at, line)) if name == "out" else self.err.append(line))

    async def wait(self, predicate: Callable[[str], bool], stream: str = "out", timeout: float = 30) -> str:
        """The first line of ``stream`` matching ``predicate``; AssertionError with the output so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._drain()
            lines = [line for _, line in self.out] if stream == "out" else self.err
            for line in lines:
                if predicate(line):
                    return line
            if self.proc.poll() is not None and self._lines.empty():
                break
            await asyncio.sleep(0.02)
        self._drain()
        raise AssertionError(f"no matching {stream} line; stdout={self.out[-20:]} stderr={self.err[-20:]}")

    def stop(self) -> int:
        """Ctrl-C, as an operator would."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._drain()
        return self.proc.returncode


def resolve_case(stack: Stack, case_id: str) -> None:
    with stack.client("routing", Role.AGENT) as routing:
        answer = routing.post(f"/v1/cases/{case_id}/resolve", json={"resolution_code": "replaced_item"})
    assert answer.status_code == 200, answer.text


async def test_watch_shows_a_submitted_complaint_while_it_runs(
    stack: Stack, broker_address: str, artifacts_dir: Path
) -> None:
    watch = Running("watch", "--no-color", env=cli_env(broker_address))
    try:
        await watch.wait(lambda line: line.startswith("watching"), stream="err")
        submitted = time.monotonic()
        accepted = submit(stack, web_complaint())
        assert accepted.status_code == 202, accepted.text
        complaint_id = accepted.json()["complaint_id"]
        received = await watch.wait(lambda line: "complaint.received.v1" in line and complaint_id[:8] in line)
        routed = await watch.wait(lambda line: "case.routed.v1" in line and complaint_id[:8] in line)
        seen_at = next(at for at, line in watch.out if line == received)
    finally:
        code = watch.stop()
    # The line says when, which service, what, whose and the key facts (readable, no colour codes when piped).
    assert accepted.json()["customer_id"] in received and "intake" in received
    assert "routing" in routed and " -> " in routed and "first response by" in routed
    assert "\033[" not in received
    assert code == 130
    # Recorded for people to look at, not asserted: the delay from the POST to the line on screen.
    (artifacts_dir / "operators-watch-delay.txt").write_text(f"{seen_at - submitted:.3f} s\n")


async def test_follow_shows_exactly_one_complaints_chain_earlier_and_live(stack: Stack, broker_address: str) -> None:
    async with EventTap(broker_address, from_beginning=False) as tap:
        mine = submit(stack, web_complaint()).json()["complaint_id"]
        [routed] = await tap.wait_for(lambda e: e.type == "case.routed.v1" and e.correlationid == mine)
        follow = Running("watch", "--follow", mine, env=cli_env(broker_address))
        try:
            # Events published before the command started are shown, in order.
            await follow.wait(lambda line: "case.routed.v1" in line)
            await follow.wait(lambda line: "following live" in line, stream="err")
            other = submit(stack, web_complaint()).json()["complaint_id"]
            await tap.wait_for(lambda e: e.type == "case.routed.v1" and e.correlationid == other)
            resolve_case(stack, routed.data["case_id"])
            await tap.wait_for(lambda e: e.type == "case.resolved.v1" and e.correlationid == mine)
            issued = await tap.wait_for(lambda e: e.type.startswith("compensation.") and e.correlationid == mine)
            await follow.wait(lambda line: "case.resolved.v1" in line)
            await follow.wait(lambda line: issued[0].type in line)
        finally:
            follow.stop()
    lines = [line for _, line in follow.out]
    types = [line.split()[2] for line in lines]
    assert types[0] == "complaint.received.v1" and "case.routed.v1" in types and "case.resolved.v1" in types
    assert all(mine[:8] in line for line in lines), lines
    assert not any(other[:8] in line for line in lines)
    services = {line.split()[1] for line in lines}
    assert {"intake", "routing", "recovery"} <= services


async def test_follow_json_to_end_prints_the_raw_chain(stack: Stack, broker_address: str) -> None:
    async with EventTap(broker_address, from_beginning=False) as tap:
        mine = submit(stack, web_complaint()).json()["complaint_id"]
        submit(stack, web_complaint())
        await tap.wait_for(lambda e: e.type == "case.routed.v1" and e.correlationid == mine)
        expected = {e.id for e in tap.events if e.correlationid == mine}
    done = run_cli("watch", "--follow", mine, "--json", "--to-end", env=cli_env(broker_address))
    assert done.returncode == 0, done.stderr
    printed = [Envelope.model_validate_json(line) for line in done.stdout.splitlines()]
    assert {e.correlationid for e in printed} == {mine}
    assert expected <= {e.id for e in printed}
    assert [e.time for e in printed] == sorted(e.time for e in printed)


async def test_recorded_events_replayed_through_a_candidate_policy(
    stack: Stack, broker_address: str, tmp_path: Path
) -> None:
    async with EventTap(broker_address, from_beginning=False) as tap:
        mine = submit(stack, web_complaint()).json()["complaint_id"]
        [received] = await tap.wait_for(lambda e: e.type == "complaint.received.v1" and e.correlationid == mine)
        await tap.wait_for(lambda e: e.type == "case.routed.v1" and e.correlationid == mine)
    recording = run_cli("watch", "--follow", mine, "--json", "--to-end", env=cli_env(broker_address))
    events = tmp_path / "recorded.jsonl"
    events.write_text(recording.stdout)
    # The candidate makes this complaint's category critical.
    category = received.data["classification"]["category"]
    live = policy_file(tmp_path / "live.yaml", ROOT / "services/routing/policy.yaml", ROUTING_PINNED)
    candidate = policy_file(tmp_path / "candidate.yaml", live, {"severity": {"category_base": {category: "P1"}},
                                                                "version": "critical-" + category})
    done = run_cli("whatif", "--policy", str(candidate), "--events", str(events), "--live-routing", str(live),
                   "--json", env=cli_env(broker_address))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["complaints"] == 1
    assert report["candidate"]["cases_per_tier"]["P1"] == 1
    assert report["live"]["cases_per_tier"]["P1"] == 0
    from_broker = run_cli("whatif", "--policy", str(candidate), "--from-broker", "--live-routing", str(live),
                          "--json", env=cli_env(broker_address))
    assert from_broker.returncode == 0, from_broker.stderr
    assert json.loads(from_broker.stdout)["complaints"] >= 1


async def _produce(broker: str, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def test_dlq_lists_a_poison_event_and_republishes_it(stack: Stack, broker_address: str) -> None:
    key = f"poison-{uuid.uuid4().hex[:8]}"
    headers = [("ce_type", b"complaint.received.v1"), ("ce_id", uuid.uuid4().hex.encode()), ("ce_source", b"/test"),
               ("ce_correlationid", key.encode()), ("ce_specversion", b"1.0")]
    async with EventTap(broker_address, [str(Topic.DEAD_LETTER), str(Topic.COMPLAINTS)], from_beginning=False) as tap:
        await _produce(broker_address, str(Topic.COMPLAINTS), key.encode(), b"{not json", headers)
        await tap.wait_for_item(lambda i: i.topic == str(Topic.DEAD_LETTER) and i.key == key)
        listed = run_cli("dlq", "list", "--json", env=cli_env(broker_address))
        assert listed.returncode == 0, listed.stderr
        mine = [d for d in json.loads(listed.stdout) if d["key"] == key]
        assert mine and mine[0]["source_topic"] == str(Topic.COMPLAINTS)
        assert "not JSON" in mine[0]["error"] and mine[0]["consumer"].startswith("redress-")
        assert not mine[0]["valid_now"]
        human = run_cli("dlq", "list", env=cli_env(broker_address))
        assert key in human.stdout and "not JSON" in human.stdout
        # Still broken: refused with what to do; with --force it goes back as it is.
        refused = run_cli("dlq", "republish", mine[0]["ref"], env=cli_env(broker_address))
        assert refused.returncode == 1 and "still not a valid event" in refused.stderr
        forced = run_cli("dlq", "republish", mine[0]["ref"], "--force", env=cli_env(broker_address))
        assert forced.returncode == 0, forced.stderr
        again = await tap.wait_for_item(
            lambda i: i.topic == str(Topic.COMPLAINTS) and i.key == key and i.offset != mine[0]["source_offset"]
        )
    assert again.value == b"{not json"
    assert not [h for h in again.headers if h.startswith("dlq_")]
    missing = run_cli("dlq", "republish", "3:999999", env=cli_env(broker_address))
    assert missing.returncode == 1 and "redress dlq list" in missing.stderr


async def test_republished_dead_letter_is_handled_after_the_fix(stack: Stack, broker_address: str) -> None:
    # A valid event a consumer once failed on (the bug is fixed since): re-publishing lets it through.
    body = web_complaint()
    complaint_id = str(uuid.uuid4())
    env = Envelope.model_validate({
        "source": "/redress/intake", "type": "complaint.received.v1", "subject": complaint_id,
        "correlationid": complaint_id, "partitionkey": body["customer_id"],
        "data": {"complaint_id": complaint_id, "customer_id": body["customer_id"], "channel": "web",
                 "received_at": "2026-11-23T10:00:00+00:00", "text": body["text"],
                 "classification": {"category": "product_usage"}},
    })
    key, value, headers = to_kafka(env)
    dlq_headers = [*headers, ("dlq_error", b"OperationalError: a bug since fixed"),
                   ("dlq_consumer", b"redress-routing"), ("dlq_source_topic", str(Topic.COMPLAINTS).encode()),
                   ("dlq_source_partition", b"0"), ("dlq_source_offset", b"0"), ("dlq_at", b"2026-11-23T10:00:01")]
    async with EventTap(broker_address, from_beginning=False) as tap:
        await _produce(broker_address, str(Topic.DEAD_LETTER), key, value, dlq_headers)
        await tap.wait_for_item(lambda i: i.topic == str(Topic.DEAD_LETTER) and i.key == body["customer_id"])
        done = run_cli("dlq", "republish", env.id, env=cli_env(broker_address))
        assert done.returncode == 0, done.stderr
        assert "re-published" in done.stdout
        [routed] = await tap.wait_for(lambda e: e.type == "case.routed.v1" and e.correlationid == complaint_id)
    assert routed.data["customer_id"] == body["customer_id"]


async def test_lag_prints_each_service_group(stack: Stack, broker_address: str) -> None:
    async with EventTap(broker_address, from_beginning=False) as tap:
        mine = submit(stack, web_complaint()).json()["complaint_id"]
        await tap.wait_for(lambda e: e.type == "case.routed.v1" and e.correlationid == mine)
    done = run_cli("lag", env=cli_env(broker_address))
    assert done.returncode == 0, done.stderr
    assert "redress-routing" in done.stdout and str(Topic.COMPLAINTS) in done.stdout
    rows = json.loads(run_cli("lag", "--json", env=cli_env(broker_address)).stdout)
    groups = {r["group"] for r in rows}
    assert {"redress-routing", "redress-recovery", "redress-loyalty"} <= groups
    routing_complaints = [r for r in rows if r["group"] == "redress-routing" and r["topic"] == str(Topic.COMPLAINTS)]
    assert routing_complaints and all(r["end"] >= (r["committed"] or 0) >= 0 for r in routing_complaints)


@pytest.mark.parametrize("command", [["watch"], ["lag"], ["dlq", "list"], ["watch", "--follow", "x" * 36]])
def test_unreachable_broker_gives_a_clear_error(command: list[str]) -> None:
    done = run_cli(*command, env=cli_env(f"127.0.0.1:{free_port()}"), timeout=60)
    assert done.returncode == 3
    assert "cannot reach the Kafka broker" in done.stderr and "make run" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_broker_address_says_where_to_find_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    done = run_cli("lag", env={**env, "DATA_DIR": str(tmp_path)})
    assert done.returncode == 3 and "KAFKA_BOOTSTRAP_SERVERS" in done.stderr


def test_bad_watch_filter_is_refused() -> None:
    done = run_cli("watch", "--severity", "P7", env=cli_env("127.0.0.1:1"))
    assert done.returncode == 2 and "P1, P2, P3 or P4" in done.stderr


async def test_submit_signs_like_an_integration_on_every_channel(stack: Stack, broker_address: str) -> None:
    async with EventTap(broker_address, [str(Topic.COMPLAINTS)], from_beginning=False) as tap:
        for channel in Channel:
            done = run_cli("submit", "--channel", channel.value, "--customer", f"cust-{uuid.uuid4().hex[:8]}",
                           "--text", f"{channel.value}: the parcel arrived broken", env=cli_env(broker_address, stack))
            assert done.returncode == 0, (channel, done.stderr)
            complaint_id = done.stdout.strip()
            assert f"redress watch --follow {complaint_id}" in done.stderr
            [event] = await tap.wait_for(lambda e, cid=complaint_id: e.correlationid == cid)
            assert event.data["channel"] == channel.value


def test_submit_native_body_with_an_unknown_field_names_it(stack: Stack, broker_address: str, tmp_path: Path) -> None:
    body = tmp_path / "web.json"
    body.write_text(json.dumps({"customer_id": "cust-1", "text": "broken", "surprise": 1}))
    done = run_cli("submit", "--json-body", str(body), env=cli_env(broker_address, stack))
    assert done.returncode == 2
    assert "surprise" in done.stderr


def test_submit_with_a_wrong_secret_is_refused(stack: Stack, broker_address: str) -> None:
    done = run_cli("submit", "--key-id", "web-test", "--secret", "not-the-secret-0123456789",
                   env=cli_env(broker_address, stack))
    assert done.returncode == 1
    assert "refused the signature" in done.stderr and "INTAKE_CHANNEL_KEYS" in done.stderr


def test_submit_to_an_unreachable_intake_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    unreadable = run_cli("submit", "--json-body", str(missing), env=cli_env("127.0.0.1:1"))
    assert unreadable.returncode == 2 and "cannot read" in unreadable.stderr
    done = run_cli("submit", "--intake", f"http://127.0.0.1:{free_port()}", env=cli_env("127.0.0.1:1"))
    assert done.returncode == 3 and "make run" in done.stderr
