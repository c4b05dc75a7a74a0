"""The outbox relay's fast path sends exactly what the model-based binding would."""

import json
import uuid

import pytest

from shared.envelope import (
    MalformedEvent,
    envelope_to_json,
    from_kafka,
    header_type,
    new_event,
    to_kafka,
    to_kafka_from_json,
)
from shared.events.complaints import Classification, ComplaintReceived
from shared.events.vocabulary import Category, Channel


def _event(**extra: object):  # type: ignore[no-untyped-def]
    cid = str(uuid.uuid4())
    data = ComplaintReceived(
        complaint_id=cid, customer_id="cust-ü", channel=Channel.WEB, received_at="2026-12-07T10:00:00Z",
        text="Le colis est arrivé cassé — « inacceptable »",
        classification=Classification(category=Category.SERVICE_COMPLAINT),
    )
    return new_event(data, source="/redress/intake", subject=cid, correlation_id=cid, **extra)  # type: ignore[arg-type]


TRACEPARENT = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"


@pytest.mark.parametrize("extra", [{}, {"causation_id": "e-1", "traceparent": TRACEPARENT}])
def test_stored_json_binds_like_the_model(extra: dict[str, str]) -> None:
    env = _event(**extra)
    assert to_kafka_from_json(envelope_to_json(env)) == to_kafka(env)


def test_stored_json_reads_back_as_the_same_event() -> None:
    env = _event(causation_id="e-1")
    assert from_kafka(*to_kafka_from_json(envelope_to_json(env))) == env


def test_envelope_json_of_another_shape_binds_like_the_model() -> None:
    """JSON whose members come in another order (a JSONB column sorts them) is parsed whole, not cut."""
    env = _event(causation_id="e-1")
    members = json.loads(envelope_to_json(env))
    reordered = json.dumps({"data": members.pop("data"), **members}, ensure_ascii=False)
    assert to_kafka_from_json(reordered) == to_kafka(env)


def test_a_data_member_inside_the_data_is_not_taken_for_the_envelopes() -> None:
    env = _event()
    env.data["text"] = 'quoted ,"data": inside'
    assert to_kafka_from_json(envelope_to_json(env).encode()) == to_kafka(env)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xfe not an event", "value is not JSON"),
        (b"", "value is not JSON"),
        (b'{"text": "\xff"}', "value is not JSON"),  # not UTF-8
        (b'{"text": "cut', "value is not JSON"),
        (b"[1, 2]", "value is not a JSON object"),
    ],
)
def test_a_value_that_is_no_json_object_is_malformed_with_the_reason(value: bytes, reason: str) -> None:
    key, _, headers = to_kafka(_event())
    with pytest.raises(MalformedEvent, match=reason):
        from_kafka(key, value, headers)


def test_the_type_header_is_read_alone() -> None:
    _, _, headers = to_kafka(_event())
    assert header_type(headers) == "complaint.received.v1"
    assert header_type([("content-type", b"application/json")]) is None
    assert header_type(None) is None
