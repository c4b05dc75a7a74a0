"""Traces, metrics and AsyncAPI of the running services."""

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from shared.asyncapi import SERVICES
from shared.embedded_broker import start_mock_cluster
from shared.envelope import Envelope, to_kafka
from shared.events.vocabulary import Role
from shared.topics import Topic
from shared.tracing import trace_id_of
from tests.support.complaints import submit, web_complaint
from tests.support.events import EventTap
from tests.support.infra import throwaway_database
from tests.support.stack import Stack, migrate_all, running_stack, stack_env

pytestmark = pytest.mark.slow


async def test_every_event_of_a_complaint_carries_its_trace(stack: Stack, broker_address: str) -> None:
    async with EventTap(broker_address, from_beginning=False) as tap:
        complaint_id = submit(stack, web_complaint()).json()["complaint_id"]
        [routed] = await tap.wait_for(lambda e: e.type == "case.routed.v1" and e.correlationid == complaint_id)
        # An operator acts later, in a request of its own: its events still join the complaint's trace.
        with stack.client("routing", Role.AGENT) as routing:
            answer = routing.post(f"/v1/cases/{routed.data['case_id']}/resolve", json={"resolution_code": "fixed"})
        assert answer.status_code == 200, answer.text
        await tap.wait_for(lambda e: e.type.startswith("compensation.") and e.correlationid == complaint_id)
        chain = [e for e in tap.events if e.correlationid == complaint_id]
    assert {e.source for e in chain} >= {"/redress/intake", "/redress/routing", "/redress/recovery"}
    assert {trace_id_of(e.traceparent) for e in chain} == {complaint_id.replace("-", "")}
    # Each hop is its own span: no two events share a parent span.
    assert len({e.traceparent for e in chain}) == len(chain)


def _spans(log_dir: Path) -> list[dict[str, Any]]:
    spans = []
    for log in log_dir.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"context"' in line and '"kind"' in line:
                spans.append(json.loads(line))
    return spans


@pytest.fixture(scope="module")
def traced_stack(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Iterator[tuple[Stack, str, Path]]:
    """Four services exporting their spans to their logs, on their own database and broker."""
    owner, broker = start_mock_cluster()
    with throwaway_database() as url:
        env = stack_env(url, broker, tmp_path_factory.mktemp("traced"), OTEL_TRACES_EXPORTER="console")
        migrate_all(env)
        logs = artifacts_dir / "traced-stack-logs"
        for old in logs.glob("*.log"):
            old.unlink()
        with running_stack(env, logs) as running:
            yield running, broker, logs
    del owner


async def test_one_complaint_is_one_trace_across_the_four_services(traced_stack: tuple[Stack, str, Path]) -> None:
    stack, broker, logs = traced_stack
    async with EventTap(broker, from_beginning=False) as tap:
        complaint_id = submit(stack, web_complaint()).json()["complaint_id"]
        await tap.wait_for(lambda e: e.type == "case.routed.v1" and e.correlationid == complaint_id)
    trace_id = "0x" + complaint_id.replace("-", "")

    def mine() -> list[dict[str, Any]]:
        return [s for s in _spans(logs) if s["context"]["trace_id"] == trace_id]

    # Recovery (case.routed) and loyalty (complaint.received) handle their events a moment later.
    for _ in range(100):
        if {s["resource"]["attributes"]["service.name"] for s in mine()} >= set(SERVICES):
            break
        await asyncio.sleep(0.1)
    spans = mine()
    by_id = {s["context"]["span_id"]: s for s in spans}
    services = {s["resource"]["attributes"]["service.name"] for s in spans}
    assert services >= set(SERVICES)
    consumers = [s for s in spans if s["kind"] == "SpanKind.CONSUMER"]
    producers = [s for s in spans if s["kind"] == "SpanKind.PRODUCER"]
    assert consumers and producers
    for span in consumers:  # every consumed event is the child of the span that published it
        assert by_id[span["parent_id"]]["kind"] == "SpanKind.PRODUCER", span["name"]
    for span in producers:
        assert span["parent_id"] in by_id, span["name"]
    [root] = [s for s in spans if s["parent_id"] is None]
    assert root["resource"]["attributes"]["service.name"] == "intake"
    # The root links to the span of intake's HTTP request that accepted it (inside the request's SERVER span).
    everything = {s["context"]["span_id"]: s for s in _spans(logs)}
    [link] = root["links"]
    linked = everything[link["context"]["span_id"]]
    while linked["kind"] != "SpanKind.SERVER":
        linked = everything[linked["parent_id"]]
    assert linked["attributes"]["http.route"] == "/v1/channels/{channel}/complaints"
    assert linked["resource"]["attributes"]["service.name"] == "intake"
    # One request, one SERVER span: the web framework's own telemetry would add a second request span
    # in a trace of its own, and its operation spans under ours.
    posts = [s for s in everything.values() if s["kind"] == "SpanKind.SERVER"
             and s["attributes"].get("http.route") == "/v1/channels/{channel}/complaints"]
    assert [s["context"]["span_id"] for s in posts] == [linked["context"]["span_id"]]
    assert not [s["name"] for s in everything.values() if s["name"].startswith("fastapi.")]


def _metrics(url: str) -> dict[str, list[Any]]:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _value(samples: list[Any], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


async def _produce(broker: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        for _ in range(2):  # the second copy is a redelivery: the inbox skips it
            await producer.send_and_wait(str(Topic.COMPLAINTS), value, key=key, headers=headers)
    finally:
        await producer.stop()


async def test_metrics_the_issue_names_exist_and_move(stack: Stack, broker_address: str) -> None:
    complaint_id = str(uuid.uuid4())
    body = web_complaint()
    duplicate = Envelope.model_validate({
        "source": "/test", "type": "complaint.received.v1", "subject": complaint_id, "correlationid": complaint_id,
        "partitionkey": body["customer_id"],
        "data": {"complaint_id": complaint_id, "customer_id": body["customer_id"], "channel": "web",
                 "received_at": "2026-11-23T10:00:00+00:00", "text": "twice", "classification": {"category": "other"}},
    })
    async with EventTap(broker_address, from_beginning=False) as tap:
        accepted = submit(stack, body).json()["complaint_id"]
        await _produce(broker_address, *to_kafka(duplicate)[:2], to_kafka(duplicate)[2])
        await _produce(broker_address, b"poison-metrics", b"{not json", [("ce_type", b"complaint.received.v1")])
        await tap.wait_for(lambda e: e.type == "case.routed.v1" and e.correlationid == accepted)
        await tap.wait_for(lambda e: e.type == "case.routed.v1" and e.correlationid == complaint_id)
        await tap.wait_for_item(lambda i: i.topic == str(Topic.DEAD_LETTER) and i.key == "poison-metrics")
    intake, routing = _metrics(stack.url("intake")), _metrics(stack.url("routing"))
    route = "/v1/channels/{channel}/complaints"
    assert _value(intake["redress_http_requests"], "redress_http_requests_total", route=route, status="202") >= 1
    assert _value(intake["redress_http_request_seconds"], "redress_http_request_seconds_count", route=route) >= 1
    assert _value(intake["redress_events_published"], "redress_events_published_total",
                  type="complaint.received.v1") >= 1
    assert "redress_outbox_backlog" in intake and "redress_outbox_oldest_age_seconds" in intake
    assert _value(routing["redress_events_consumed"], "redress_events_consumed_total",
                  type="complaint.received.v1") >= 2
    assert _value(routing["redress_handler_seconds"], "redress_handler_seconds_count",
                  type="complaint.received.v1") >= 2
    assert _value(routing["redress_inbox_duplicates"], "redress_inbox_duplicates_total",
                  type="complaint.received.v1") >= 1
    assert _value(routing["redress_dead_lettered"], "redress_dead_lettered_total", type="malformed") >= 1
    assert any(s.labels.get("topic") == str(Topic.COMPLAINTS) for s in routing["redress_consumer_lag"])
    # SLA timers: routing schedules each new case's deadlines; none is overdue on a healthy stack.
    assert sum(s.value for s in routing["redress_timers_scheduled"]) >= 1
    assert "redress_timers_overdue" in routing and "redress_timers_due" in routing


@pytest.mark.parametrize("service", SERVICES)
def test_asyncapi_is_served_next_to_openapi(stack: Stack, service: str) -> None:
    with httpx.Client(base_url=stack.url(service), timeout=10) as client:
        document = client.get("/asyncapi.json")
        openapi = client.get("/openapi.json")
    assert document.status_code == 200 and openapi.status_code == 200
    doc = document.json()
    assert doc["asyncapi"] == "3.0.0"
    assert {c["address"] for c in doc["channels"].values()} == {t.value for t in Topic}
    assert any(op["action"] == "send" for op in doc["operations"].values())
    if service != "intake":
        assert any(op["action"] == "receive" for op in doc["operations"].values())
