"""Deduplication: the same message twice is one complaint; a second message about an open complaint is a follow-up."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from shared.events.cases import CaseResolved
from shared.events.vocabulary import Category, Severity
from tests.integration.intake.conftest import Intake
from tests.integration.intake.helpers import fresh, problem, publish, unique
from tests.support.events import EventTap


def _accepted(response: Any) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


async def _events_of(tap: EventTap, intake: Intake, complaint_id: str) -> list[str]:
    """Event types published for a complaint, once a later marker complaint shows the outbox got that far."""
    marker = _accepted(intake.channels.post("generic", fresh("generic_en")))["complaint_id"]
    await tap.wait_for(lambda e: e.subject == marker)
    return [e.type for e in tap.events if e.subject == complaint_id]


async def test_same_external_reference_returns_the_first_answer_and_no_second_event(
    intake: Intake, broker_address: str
) -> None:
    payload = fresh("email_en")
    async with EventTap(broker_address, from_beginning=False) as tap:
        first = intake.channels.post("email", payload)
        again = intake.channels.post("email", payload, retry=1)  # signed anew: a retry by the integration
        assert again.status_code == 202
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert await _events_of(tap, intake, first.json()["complaint_id"]) == ["complaint.received.v1"]


async def test_same_idempotency_key_returns_the_first_answer(intake: Intake, broker_address: str) -> None:
    payload = fresh("web_en")
    del payload["submission_id"]  # no external reference: only the key protects against the retry
    key = unique("idem")
    async with EventTap(broker_address, from_beginning=False) as tap:
        first = _accepted(intake.channels.post("web", payload, idempotency_key=key))
        again = intake.channels.post("web", payload, idempotency_key=key, retry=1)
        assert (again.status_code, again.json()) == (202, first)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert await _events_of(tap, intake, first["complaint_id"]) == ["complaint.received.v1"]


def test_idempotency_key_reused_with_another_body_is_refused(intake: Intake) -> None:
    key = unique("idem")
    _accepted(intake.channels.post("web", fresh("web_en"), idempotency_key=key))
    body = problem(intake.channels.post("web", fresh("web_en"), idempotency_key=key), 422)
    assert body["type"].endswith("/idempotency-key-reused")


async def test_second_message_about_the_same_order_is_a_follow_up(intake: Intake, broker_address: str) -> None:
    customer = unique("cust")
    order = f"2024{time.time_ns() % 10**9:09d}"
    first = _accepted(intake.channels.post("web", fresh("web_en", customer_id=customer, order_ref=order)))
    payload = fresh("chat_zh", customer_id=customer, order_ref=order)
    async with EventTap(broker_address, from_beginning=False) as tap:
        second = _accepted(intake.channels.post("chat", payload))
        [event] = await tap.wait_for(
            lambda e: e.type == "complaint.followed_up.v1" and e.subject == first["complaint_id"]
        )
    assert second["outcome"] == "followed_up"
    assert second["complaint_id"] == first["complaint_id"]
    assert second["follow_up_count"] == 1
    assert event.data["follow_up_count"] == 1
    assert event.data["channel"] == "chat"
    assert event.data["match_reason"] == f"same order {order}"
    assert event.correlationid == first["complaint_id"]
    assert event.partitionkey == customer
    with intake.operator() as client:
        view = client.get(f"/v1/complaints/{first['complaint_id']}").json()
    assert view["follow_up_count"] == 1
    assert [m["kind"] for m in view["messages"]] == ["complaint", "follow_up"]
    assert [e["event_type"] for e in view["timeline"]] == ["complaint.received.v1", "complaint.followed_up.v1"]


def test_close_text_from_the_same_customer_is_a_follow_up(intake: Intake) -> None:
    phone = "+86 139 1111 " + str(time.time_ns() % 10**4).zfill(4)
    text = "洗衣机显示E21，水排不出去，衣服泡在里面一晚上了"
    first_call = fresh("phone_zh", caller_number=phone, transcript=text, ivr_path=[])
    second_call = fresh("phone_zh", caller_number=phone, transcript="洗衣机还是显示E21，水还是排不出去", ivr_path=[])
    for call in (first_call, second_call):
        del call["customer_id"]  # the caller is known by the number only
    first = _accepted(intake.channels.post("phone", first_call))
    again = _accepted(intake.channels.post("phone", second_call))
    assert again["outcome"] == "followed_up" and again["complaint_id"] == first["complaint_id"]


def test_an_email_answering_the_complaints_email_is_a_follow_up(intake: Intake) -> None:
    sender = f"{unique('thread')}@example.com"
    first_payload = fresh("email_zh", **{"from": sender})
    first = _accepted(intake.channels.post("email", first_payload))
    reply = fresh("email_zh", **{"from": sender, "text": "请问有进展吗？", "in_reply_to": first_payload["message_id"]})
    again = _accepted(intake.channels.post("email", reply))
    assert again["outcome"] == "followed_up" and again["complaint_id"] == first["complaint_id"]


def test_an_unrelated_message_is_a_new_complaint_and_contacts_are_counted(intake: Intake) -> None:
    customer = unique("cust")
    texts = [
        "The laptop restarts at the logo screen.",
        "The courier was rude and threw my parcel.",
        "Why was my return refused under the 7-day rule?",
    ]
    answers = [
        _accepted(intake.channels.post("web", fresh("web_en", customer_id=customer, description=t))) for t in texts
    ]
    assert [a["outcome"] for a in answers] == ["created"] * 3
    assert len({a["complaint_id"] for a in answers}) == 3
    with intake.operator() as client:
        views = [client.get(f"/v1/complaints/{a['complaint_id']}").json() for a in answers]
    assert [v["repeat_contacts"] for v in views] == [0, 1, 2]
    assert "repeated_contact" in answers[2]["urgency_cues"]  # two earlier contacts reach the policy's threshold
    assert "repeated_contact" not in answers[1]["urgency_cues"]


async def test_a_resolved_complaint_is_not_followed_up(intake: Intake, broker_address: str) -> None:
    customer = unique("cust")
    order = f"2024{time.time_ns() % 10**9:09d}"
    first = _accepted(intake.channels.post("web", fresh("web_en", customer_id=customer, order_ref=order)))
    now = time.time()
    await publish(
        broker_address,
        CaseResolved(
            case_id=unique("case"),
            complaint_id=first["complaint_id"],
            customer_id=customer,
            severity=Severity.P3,
            category=Category.PRODUCT_USAGE,
            queue="product_support",
            resolution_code="replaced",
            first_handling=True,
            resolved_at=datetime.fromtimestamp(now, UTC),
            resolved_by="agent-1",
        ),
        first["complaint_id"],
    )
    with intake.operator() as client:
        for _ in range(200):
            if client.get(f"/v1/complaints/{first['complaint_id']}").json()["status"] == "resolved":
                break
            await asyncio.sleep(0.1)
    again = _accepted(intake.channels.post("app", fresh("app_en", customer_id=customer, order_ref=order)))
    assert again["outcome"] == "created" and again["complaint_id"] != first["complaint_id"]


def test_after_the_follow_up_window_a_message_is_a_new_complaint(strict_intake: Intake) -> None:
    customer = unique("cust")
    order = f"2024{time.time_ns() % 10**9:09d}"
    first = _accepted(strict_intake.channels.post("chat", fresh("chat_en", customer_id=customer, order_ref=order)))
    time.sleep(1.5)  # the strict intake's policy keeps complaints open to follow-ups for one second
    again = _accepted(strict_intake.channels.post("chat", fresh("chat_en", customer_id=customer, order_ref=order)))
    assert again["outcome"] == "created" and again["complaint_id"] != first["complaint_id"]
