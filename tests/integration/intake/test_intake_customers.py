"""The contact directory: provisional customers, contacts linked when a message proves they belong together."""

from __future__ import annotations

import time
from typing import Any

from tests.integration.intake.conftest import Intake
from tests.integration.intake.helpers import fresh, problem, unique


def _accepted(response: Any) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def _generic(text: str, **contact: str) -> dict[str, Any]:
    return {"source": "partner-portal", "external_id": unique("g"), "text": text, **contact}


def _page(intake: Intake, customer_id: str, **params: Any) -> dict[str, Any]:
    with intake.operator() as client:
        response = client.get("/v1/complaints", params={"customer_id": customer_id, **params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_unknown_contacts_make_a_provisional_customer_that_later_messages_find(intake: Intake) -> None:
    email = f"{unique('walkin')}@Example.com"
    first = _accepted(intake.channels.post("generic", _generic("The kettle leaks.", email=email)))
    again = _accepted(intake.channels.post("generic", _generic("The courier was rude.", email=email.lower())))
    assert first["provisional_customer"] is True
    assert first["customer_id"].startswith("prov-")
    assert again["customer_id"] == first["customer_id"]


def test_phone_numbers_written_differently_are_one_customer(intake: Intake) -> None:
    digits = f"139{time.time_ns() % 10**8:08d}"
    typed = [digits, f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}", f"0086-{digits[:3]}-{digits[3:7]}-{digits[7:]}"]
    texts = ["My router drops every evening.", "你们的快递员态度很差。", "Why was the trade-in price lower?"]
    answers = [
        _accepted(intake.channels.post("generic", _generic(t, phone=p))) for p, t in zip(typed, texts, strict=True)
    ]
    assert len({a["customer_id"] for a in answers}) == 1


def test_a_message_with_a_customer_id_links_the_provisional_customer(intake: Intake) -> None:
    email = f"{unique('later')}@example.com"
    provisional = _accepted(intake.channels.post("generic", _generic("The heater trips the breaker.", email=email)))
    customer = unique("C")
    known = _accepted(intake.channels.post("app", fresh("app_en", customer_id=customer, email=email)))
    assert known["customer_id"] == customer and known["provisional_customer"] is False
    page = _page(intake, customer)
    assert provisional["customer_id"] in page["customer_ids"]
    assert {item["id"] for item in page["items"]} == {provisional["complaint_id"], known["complaint_id"]}
    # Asking by the provisional id finds the same customer.
    assert _page(intake, provisional["customer_id"])["customer_id"] == customer
    # The next message by e-mail alone now belongs to the known customer.
    later = _accepted(intake.channels.post("generic", _generic("Where is my refund?", email=email)))
    assert later["customer_id"] == customer


def test_two_provisional_customers_merge_when_one_message_names_both_contacts(intake: Intake) -> None:
    email, phone = f"{unique('two')}@example.com", f"139{time.time_ns() % 10**8:08d}"
    by_email = _accepted(intake.channels.post("generic", _generic("The blender lid pops open.", email=email)))
    by_phone = _accepted(intake.channels.post("generic", _generic("Staff ignored me in store.", phone=phone)))
    assert by_email["customer_id"] != by_phone["customer_id"]
    both = _accepted(intake.channels.post("generic", _generic("Points never arrived.", email=email, phone=phone)))
    assert both["customer_id"] == by_email["customer_id"]
    page = _page(intake, by_phone["customer_id"])
    assert page["customer_id"] == by_email["customer_id"]
    assert len(page["items"]) == 3


def test_a_contact_of_a_known_customer_is_not_taken_by_another(intake: Intake) -> None:
    email = f"{unique('owned')}@example.com"
    alice, bob = unique("C"), unique("C")
    _accepted(intake.channels.post("app", fresh("app_en", customer_id=alice, email=email)))
    bobs = _accepted(intake.channels.post("app", fresh("app_zh", customer_id=bob, email=email)))
    assert bobs["customer_id"] == bob
    anonymous = _accepted(intake.channels.post("generic", _generic("Still waiting.", email=email)))
    assert anonymous["customer_id"] == alice


def test_social_handles_identify_a_customer(intake: Intake) -> None:
    handle = unique("fan")
    first = _accepted(intake.channels.post("social", fresh("social_zh", handle=f"@{handle}")))
    again = _accepted(intake.channels.post("social", fresh("social_zh", handle=handle.upper(), text="电视黑屏了")))
    assert again["customer_id"] == first["customer_id"]


def test_complaints_page_newest_first(intake: Intake) -> None:
    customer = unique("C")
    texts = [
        "The fridge is noisy.",
        "The courier was rude.",
        "Do points expire?",
        "My account was hacked.",
        "Please add evening delivery.",
    ]
    ids = [
        _accepted(intake.channels.post("web", fresh("web_en", customer_id=customer, description=t)))["complaint_id"]
        for t in texts
    ]
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        page = _page(intake, customer, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert seen == list(reversed(ids))
    assert cursor is None
    first = _page(intake, customer, limit=1)["items"][0]
    assert first["excerpt"] == texts[-1] and first["status"] == "received"


def test_complaint_list_refuses_bad_input(intake: Intake) -> None:
    with intake.operator() as client:
        assert problem(client.get("/v1/complaints"), 422)["errors"][0]["field"] == "query.customer_id"
        bad_cursor = client.get("/v1/complaints", params={"customer_id": "x", "cursor": "not-a-cursor!"})
        assert problem(bad_cursor, 422)["errors"][0]["field"] == "query.cursor"
        too_many = client.get("/v1/complaints", params={"customer_id": "x", "limit": 1000})
        assert problem(too_many, 422)["errors"][0]["field"] == "query.limit"


def test_unknown_customer_has_an_empty_list(intake: Intake) -> None:
    page = _page(intake, unique("nobody"))
    assert page["items"] == [] and page["next_cursor"] is None
