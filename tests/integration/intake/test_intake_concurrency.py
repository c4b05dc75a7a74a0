"""Requests racing on the same rows: one complaint, one customer, one answer for all of them."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.integration.intake.conftest import Intake
from tests.integration.intake.helpers import fresh, sign, unique


def _race(
    intake: Intake, channel: str, bodies: list[bytes], idempotency_key: str | None = None
) -> list[httpx.Response]:
    """Send the bodies at once, each with its own signature (as retries from several workers would)."""
    now = int(time.time())
    key_id, secret = intake.channels.key(channel)

    def send(index: int) -> httpx.Response:
        headers = {"content-type": "application/json", **sign(key_id, secret, bodies[index], now + index)}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        with httpx.Client(base_url=intake.url, timeout=30) as client:
            return client.post(f"/v1/channels/{channel}/complaints", content=bodies[index], headers=headers)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, range(len(bodies))))


def test_the_same_message_sent_at_once_makes_one_complaint(intake: Intake) -> None:
    body = json.dumps(fresh("chat_en"), ensure_ascii=False).encode()
    answers = _race(intake, "chat", [body] * 6)
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["complaint_id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 5


def test_the_same_idempotency_key_at_once_makes_one_complaint(intake: Intake) -> None:
    payload = fresh("web_en")
    del payload["submission_id"]
    body = json.dumps(payload).encode()
    answers = _race(intake, "web", [body] * 5, idempotency_key=unique("idem"))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["complaint_id"] for a in answers}) == 1


def test_first_messages_of_a_new_contact_at_once_make_one_customer(intake: Intake) -> None:
    email = f"{unique('race')}@example.com"
    texts = ["The kettle leaks.", "The courier was rude.", "Points expired early.", "Screen flickers.", "App crashes."]
    bodies = [
        json.dumps({"source": "partner", "external_id": unique("r"), "text": text, "email": email}).encode()
        for text in texts
    ]
    answers = _race(intake, "generic", bodies)
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    assert len({a.json()["customer_id"] for a in answers}) == 1


def test_different_messages_at_once_are_each_stored_once_with_their_message_and_timeline(intake: Intake) -> None:
    """Messages accepted together (one shared transaction) each keep their own complaint, message and timeline."""
    texts = ["The kettle leaks.", "The courier was rude.", "Points expired early.", "Screen flickers.",
             "App crashes on login.", "Refund never arrived.", "Wrong colour delivered.", "Charger sparks."]
    bodies = [
        json.dumps({"source": "partner", "external_id": unique("m"), "text": text,
                    "email": f"{unique('many')}@example.com"}).encode()
        for text in texts
    ]
    answers = _race(intake, "generic", bodies)
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    assert [a.json()["outcome"] for a in answers] == ["created"] * len(texts)
    assert len({a.json()["complaint_id"] for a in answers}) == len(texts)
    assert len({a.json()["customer_id"] for a in answers}) == len(texts)
    with intake.operator() as client:
        for answer, text in zip(answers, texts, strict=True):
            view = client.get(f"/v1/complaints/{answer.json()['complaint_id']}").json()
            assert view["text"] == text
            assert [m["id"] for m in view["messages"]] == [answer.json()["message_id"]]
            assert [t["event_type"] for t in view["timeline"]] == ["complaint.received.v1"]


def test_messages_of_one_new_customer_at_once_all_land_under_it(intake: Intake) -> None:
    """The first messages naming a new customer id race to create it: one customer, every complaint listed."""
    customer_id = unique("C-race")
    texts = ["The kettle leaks at the base.", "The courier threw my parcel over the fence.",
             "My loyalty points expired a month early.", "The TV screen flickers every evening."]
    bodies = [
        json.dumps({"source": "crm", "external_id": unique("c"), "text": text, "customer_id": customer_id}).encode()
        for text in texts
    ]
    answers = _race(intake, "generic", bodies)
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    assert {a.json()["customer_id"] for a in answers} == {customer_id}
    with intake.operator() as client:
        listed = client.get("/v1/complaints", params={"customer_id": customer_id}).json()
    assert {item["id"] for item in listed["items"]} == {a.json()["complaint_id"] for a in answers}


def test_a_message_is_logged_as_accepted_once_whatever_was_rolled_back(intake: Intake) -> None:
    # Copies sent at once share a transaction that fails on the duplicate reference and is run again
    # message by message: only what committed may be logged as accepted.
    already = intake.log.read_text().count("\n") if intake.log.exists() else 0
    body = json.dumps(fresh("chat_en"), ensure_ascii=False).encode()
    answers = _race(intake, "chat", [body] * 6)
    complaint_id = answers[0].json()["complaint_id"]
    time.sleep(0.5)  # the service writes its log as it answers; let the last lines land
    new_lines = intake.log.read_text().splitlines()[already:]
    accepted = [line for line in new_lines if "complaint accepted on" in line]
    assert len(accepted) == 1, accepted
    assert complaint_id in accepted[0]
