"""Submitting complaints on every channel: accepted, stored, published, with bad input refused by field."""

from __future__ import annotations

import json

import pytest

from shared.events.vocabulary import Role
from tests.integration.intake.conftest import Intake
from tests.integration.intake.helpers import PAYLOADS, fresh, problem
from tests.support.events import EventTap

FIXTURES = sorted(p.stem for p in PAYLOADS.glob("*.json"))


@pytest.mark.parametrize("name", FIXTURES)
async def test_every_channel_payload_becomes_a_published_complaint(
    intake: Intake, broker_address: str, name: str
) -> None:
    channel = name.split("_")[0]
    expect = json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))["expect"]
    async with EventTap(broker_address, from_beginning=False) as tap:
        response = intake.channels.post(channel, fresh(name))
        assert response.status_code == 202, response.text
        answer = response.json()
        [event] = await tap.wait_for(
            lambda e: e.type == "complaint.received.v1" and e.subject == answer["complaint_id"]
        )
    assert answer["outcome"] == "created"
    assert response.headers["location"] == f"/v1/complaints/{answer['complaint_id']}"
    data = event.data
    assert event.correlationid == answer["complaint_id"]
    assert event.partitionkey == data["customer_id"] == answer["customer_id"]
    assert data["channel"] == channel
    assert data["language"] == expect["language"] == answer["language"]
    assert data["classification"]["category"] == answer["category"]
    assert data["classification"]["reasons"], "every decision carries its reasons"
    if "order_ref" in expect:
        assert data["order_ref"] == expect["order_ref"]
    if "exposure" in expect:
        assert data["exposure"] == expect["exposure"]
    with intake.operator() as client:
        stored = client.get(f"/v1/complaints/{answer['complaint_id']}").json()
    assert stored["text"] == data["text"]
    assert stored["status"] == "received"
    assert [entry["event_type"] for entry in stored["timeline"]] == ["complaint.received.v1"]
    assert stored["timeline"][0]["event_id"] == event.id


MALFORMED = [
    ("web", {"customer_id": "c-1"}, "body.text"),
    ("web", {"text": "broken", "email": "not-an-email"}, "body.email"),
    ("app", {"message": "x", "device": {"platform": "ios", "os_version": "17"}}, "body.app_version"),
    ("email", {"from": "a@example.com", "to": ["b@example.com"], "message_id": "m-1"}, "body"),
    ("email", {"from": "a@", "to": ["b@example.com"], "text": "x", "message_id": "m-2"}, "body.from"),
    ("phone", {"call_id": "c-1", "transcript": "x", "duration_seconds": -1}, "body.duration_seconds"),
    (
        "phone",
        {"call_id": "c-2", "duration_seconds": 3, "caller_number": "12345", "transcript": "x"},
        "body.caller_number",
    ),
    ("chat", {"conversation_id": "v-1", "messages": [{"role": "agent", "text": "hi"}]}, "body"),
    ("chat", {"conversation_id": "v-2", "messages": [{"role": "robot", "text": "hi"}]}, "body.messages.0.role"),
    (
        "social",
        {"platform": "myspace", "handle": "h", "post_id": "1", "visibility": "public", "text": "x"},
        "body.platform",
    ),
    ("store", {"store_id": "bad id", "staff_id": "s1", "notes": "x"}, "body.store_id"),
    ("generic", {"source": "Partner Portal", "text": "x"}, "body.source"),
    ("generic", {"source": "partner", "text": "x", "surprise": 1}, "body.surprise"),
    ("web", ["not", "an", "object"], "body"),
    ("web", {"text": "x", "customer_id": "c" * 101}, "body.customer_id"),
    ("store", {"store_id": "s1", "staff_id": "e1", "notes": "x", "order_ref": "9" * 65}, "body.order_ref"),
]


@pytest.mark.parametrize(("channel", "payload", "field"), MALFORMED, ids=[f"{c}:{f}" for c, _, f in MALFORMED])
def test_malformed_payload_is_refused_with_the_field_path(
    intake: Intake, channel: str, payload: object, field: str
) -> None:
    body = problem(intake.channels.post(channel, payload), 422)
    assert body["type"].endswith("/validation")
    assert field in [error["field"] for error in body["errors"]], body


def test_payload_that_is_not_json_is_refused(intake: Intake) -> None:
    body = problem(intake.channels.post("web", b"{not json"), 422)
    assert body["errors"][0]["field"] == "body"
    assert "not valid JSON" in body["errors"][0]["message"]


def test_unknown_channel_is_refused(intake: Intake) -> None:
    body = problem(intake.channels.post_raw("fax", b"{}"), 422)
    assert body["errors"][0]["field"] == "path.channel"


def test_overlong_idempotency_key_is_refused(intake: Intake) -> None:
    body = problem(intake.channels.post("web", fresh("web_en"), idempotency_key="k" * 201), 422)
    assert body["errors"][0]["field"] == "header.Idempotency-Key"


def test_complaint_over_its_size_limit_gets_413(intake: Intake) -> None:
    payload = fresh("web_en", description="x" * 70_000)  # the test intake takes 64 KiB per complaint
    body = problem(intake.channels.post("web", payload), 413)
    assert "at most 65536" in body["detail"]


def test_body_over_the_service_limit_gets_413_before_anything_else(intake: Intake) -> None:
    response = intake.channels.post_raw("web", b"x" * 300_000)  # unsigned: the size is checked first
    assert problem(response, 413)["title"] == "Payload too large"


def test_operator_endpoints_need_a_token(intake: Intake) -> None:
    with intake.operator() as client:
        client.headers.pop("Authorization")
        assert problem(client.get("/v1/complaints/abc"), 401)["detail"] == "missing bearer token"
        assert problem(client.get("/v1/complaints", params={"customer_id": "x"}), 401)


def test_unknown_complaint_is_404_and_bad_ids_are_422(intake: Intake) -> None:
    with intake.operator(Role.AGENT) as client:
        assert problem(client.get("/v1/complaints/00000000-0000-0000-0000-000000000000"), 404)
        assert problem(client.get("/v1/complaints/bad%20id"), 422)["errors"][0]["field"] == "path.complaint_id"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"customer_id": "c", "text": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", "nested too deeply"),
        (b'{"customer_id": "c", "text": "\xff\xfe broken utf-8"}', "not valid UTF-8 JSON"),
        (b'{"customer_id": "c", "text": "\\ud800"}', "not valid UTF-8 JSON"),
        (b"", "not valid JSON"),
    ],
    ids=["deeply-nested", "invalid-utf8", "lone-surrogate", "empty"],
)
def test_bodies_that_cannot_be_read_get_422_not_500(intake: Intake, raw: bytes, words: str) -> None:
    body = problem(intake.channels.post("web", raw), 422)
    assert body["errors"][0]["field"] == "body" and words in body["errors"][0]["message"]


def test_text_over_the_adapter_limit_names_the_field(intake: Intake) -> None:
    body = problem(intake.channels.post("generic", {"source": "partner", "text": "x" * 50_001}), 422)
    assert [e["field"] for e in body["errors"]] == ["body.text"]
