"""The points ledger through the running service: grants, redemptions, adjustments, expiry, history."""

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest

from shared.events.compensation import CompensationIssued, CompensationReversed, Remedy
from shared.events.vocabulary import Role
from tests.integration.loyalty.helpers import Bus, Loyalty, eventually, new_id, now, view_when
from tests.support.stack import operator_token


def compensation(customer_id: str, points: int, reason: str = "case_resolved", comp_id: str | None = None,
                 case_id: str | None = None) -> CompensationIssued:
    return CompensationIssued(
        compensation_id=comp_id or new_id("comp"), customer_id=customer_id, case_id=case_id or new_id("case"),
        reason=reason, remedy=Remedy(option_id="o1", kind="points", points=points), issued_at=now(),
    )


async def funded_customer(loyalty: Loyalty, bus: Bus, points: int) -> str:
    """A customer holding `points` from one compensation."""
    customer_id = new_id("cust")
    await bus.publish(compensation(customer_id, points))
    await eventually(view_when(loyalty, customer_id, lambda v: v["balance"] == points))
    return customer_id


async def test_redelivered_compensation_grants_points_once(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    event = compensation(customer_id, 300)
    async with bus.tap() as tap:
        first = await bus.publish(event)
        await bus.send(first)  # the same event delivered again
        await bus.publish(event)  # the same compensation published again under a new event id
        # A later compensation is the sentinel: once it is applied, the redeliveries were handled before it.
        await bus.publish(compensation(customer_id, 5))
        await tap.wait_for(lambda e: e.type == "loyalty.points_changed.v1" and e.data["customer_id"] == customer_id
                           and e.data["points"] == 5)
        changes = [e for e in tap.events if e.type == "loyalty.points_changed.v1"
                   and e.data["customer_id"] == customer_id]
    view = loyalty.view(customer_id).json()
    assert view["balance"] == 305
    assert [e["points"] for e in view["ledger"]["items"]] == [5, 300]
    assert [e.data["points"] for e in changes] == [300, 5]
    assert changes[0].causationid == first.id


async def test_concurrent_redemptions_never_overdraw(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = await funded_customer(loyalty, bus, 1000)
    headers = {"Authorization": f"Bearer {operator_token(Role.AGENT)}"}
    async with httpx.AsyncClient(base_url=loyalty.stack.url("loyalty"), headers=headers, timeout=30) as client:
        responses = await asyncio.gather(*[
            client.post(f"/v1/customers/{customer_id}/redemptions", json={"points": 150}) for _ in range(20)
        ])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 6 + [409] * 14  # 6 x 150 = 900 fits in 1000, a seventh would not
    assert all(r.headers["content-type"] == "application/problem+json" for r in responses if r.status_code == 409)
    balances = sorted(r.json()["balance"] for r in responses if r.status_code == 201)
    assert balances == [100, 250, 400, 550, 700, 850]
    view = loyalty.view(customer_id, ledger_limit=50).json()
    assert view["balance"] == 100
    assert sum(e["points"] for e in view["ledger"]["items"]) == 100
    assert all(e["balance_after"] >= 0 for e in view["ledger"]["items"])


async def test_redemption_value_and_insufficient_balance(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = await funded_customer(loyalty, bus, 500)
    with loyalty.client(Role.AGENT) as client:
        ok = client.post(f"/v1/customers/{customer_id}/redemptions", json={"points": 200, "reason": "voucher"})
        short = client.post(f"/v1/customers/{customer_id}/redemptions", json={"points": 301})
    assert ok.status_code == 201, ok.text
    body = ok.json()
    assert (body["value_minor"], body["currency"], body["balance"]) == (200, "CNY", 300)  # 100 points = 1 yuan
    assert body["entry"]["kind"] == "redeem" and body["entry"]["points"] == -200
    assert short.status_code == 409
    problem = short.json()
    assert problem["type"].endswith("/insufficient-points")
    assert "301" in problem["detail"] and "300" in problem["detail"]
    assert loyalty.view(customer_id).json()["balance"] == 300


async def test_redemption_with_idempotency_key_happens_once(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = await funded_customer(loyalty, bus, 500)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    with loyalty.client(Role.AGENT) as client:
        first = client.post(f"/v1/customers/{customer_id}/redemptions", json={"points": 100}, headers=key)
        again = client.post(f"/v1/customers/{customer_id}/redemptions", json={"points": 100}, headers=key)
        other_body = client.post(f"/v1/customers/{customer_id}/redemptions", json={"points": 200}, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert other_body.status_code == 422
    assert loyalty.view(customer_id).json()["balance"] == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [({"points": 0}, "body.points"), ({"points": 99}, "body.points"), ({"points": "many"}, "body.points"),
     ({}, "body.points"), ({"points": 100, "extra": 1}, "body.extra")],
)
async def test_redemption_bad_input(loyalty: Loyalty, bus: Bus, body: dict, field: str) -> None:
    customer_id = await funded_customer(loyalty, bus, 500)
    with loyalty.client(Role.AGENT) as client:
        response = client.post(f"/v1/customers/{customer_id}/redemptions", json=body)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]


def test_redemption_needs_an_operator_and_a_known_customer(loyalty: Loyalty) -> None:
    with loyalty.client() as anonymous:
        assert anonymous.post("/v1/customers/x/redemptions", json={"points": 100}).status_code == 401
    with loyalty.client(Role.AGENT) as client:
        missing = client.post(f"/v1/customers/{new_id('nobody')}/redemptions", json={"points": 100})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_adjustments_by_supervisors(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = await funded_customer(loyalty, bus, 100)
    path = f"/v1/customers/{customer_id}/adjustments"
    with loyalty.client(Role.AGENT) as agent:
        assert agent.post(path, json={"points": 50, "reason": "goodwill"}).status_code == 403
    with loyalty.client(Role.SUPERVISOR, subject="sup-1") as supervisor:
        added = supervisor.post(path, json={"points": 50, "reason": "goodwill"})
        removed = supervisor.post(path, json={"points": -120, "reason": "duplicate grant"})
        too_much = supervisor.post(path, json={"points": -31, "reason": "duplicate grant"})
        zero = supervisor.post(path, json={"points": 0, "reason": "nothing"})
        no_reason = supervisor.post(path, json={"points": 5})
    assert added.status_code == 201 and added.json()["balance_after"] == 150
    assert removed.status_code == 201 and removed.json()["balance_after"] == 30
    assert removed.json()["actor"] == "sup-1" and "sup-1" in removed.json()["reason"]
    assert too_much.status_code == 409
    assert zero.status_code == 422 and no_reason.status_code == 422
    assert loyalty.view(customer_id).json()["balance"] == 30


async def test_reversed_compensation_takes_back_what_is_left(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    granted = compensation(customer_id, 400)
    await bus.publish(granted)
    await eventually(view_when(loyalty, customer_id, lambda v: v["balance"] == 400))
    with loyalty.client(Role.AGENT) as client:
        assert client.post(f"/v1/customers/{customer_id}/redemptions", json={"points": 300}).status_code == 201
    reversal = CompensationReversed(
        compensation_id=granted.compensation_id, customer_id=customer_id, case_id=granted.case_id,
        reason="case_resolved", remedy=granted.remedy, reversed_by="sup-1",
    )
    await bus.publish(reversal)
    await bus.publish(reversal)  # published twice: reversed once
    view = await eventually(view_when(loyalty, customer_id, lambda v: v["ledger"]["items"][0]["kind"] == "reverse"))
    assert view["balance"] == 0  # never negative: the 300 points already spent stay spent
    entry = view["ledger"]["items"][0]
    assert entry["points"] == -100 and "300 points already spent" in entry["reason"]
    await bus.publish(compensation(customer_id, 7))
    view = await eventually(view_when(loyalty, customer_id, lambda v: v["balance"] == 7))
    assert [e["kind"] for e in view["ledger"]["items"]] == ["earn", "reverse", "redeem", "earn"]


async def test_ledger_history_is_paginated_newest_first(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    for points in (1, 2, 3, 4, 5):
        await bus.publish(compensation(customer_id, points))
    await eventually(view_when(loyalty, customer_id, lambda v: v["balance"] == 15))
    with loyalty.client() as anonymous:  # a customer's points are personal data
        assert anonymous.get(f"/v1/customers/{customer_id}/ledger").status_code == 401
        assert anonymous.get(f"/v1/customers/{customer_id}/loyalty").status_code == 401
    with loyalty.client(Role.AGENT) as client:
        first = client.get(f"/v1/customers/{customer_id}/ledger", params={"limit": 2}).json()
        second = client.get(f"/v1/customers/{customer_id}/ledger",
                            params={"limit": 2, "cursor": first["next_cursor"]}).json()
        third = client.get(f"/v1/customers/{customer_id}/ledger",
                           params={"limit": 2, "cursor": second["next_cursor"]}).json()
        bad_cursor = client.get(f"/v1/customers/{customer_id}/ledger", params={"cursor": "abc"})
        bad_limit = client.get(f"/v1/customers/{customer_id}/ledger", params={"limit": 0})
        unknown = client.get(f"/v1/customers/{new_id('nobody')}/ledger")
    pages = [[e["points"] for e in page["items"]] for page in (first, second, third)]
    assert pages == [[5, 4], [3, 2], [1]]
    assert third["next_cursor"] is None
    assert [e["balance_after"] for e in first["items"]] == [15, 10]
    assert bad_cursor.status_code == 422 and bad_limit.status_code == 422
    assert unknown.status_code == 404


async def test_expired_points_go_first_and_oldest_first(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    old, older = new_id("comp"), new_id("comp")
    await bus.publish(compensation(customer_id, 100, comp_id=older))
    await bus.publish(compensation(customer_id, 200, comp_id=old))
    await bus.publish(compensation(customer_id, 300))
    await eventually(view_when(loyalty, customer_id, lambda v: v["balance"] == 600))
    # Two years pass for the first two grants: the older past its expiry, the other a day short of it.
    await loyalty.sql("UPDATE points_lots SET earned_at = :at, expires_at = :exp WHERE source_key = :key",
                      at=now() - timedelta(days=731), exp=now() - timedelta(days=1), key=f"compensation:{older}")
    await loyalty.sql("UPDATE points_lots SET earned_at = :at, expires_at = :exp WHERE source_key = :key",
                      at=now() - timedelta(days=729), exp=now() + timedelta(days=1), key=f"compensation:{old}")
    view = await eventually(view_when(loyalty, customer_id, lambda v: v["balance"] == 500))  # the sweep ran
    expired = view["ledger"]["items"][0]
    assert (expired["kind"], expired["points"]) == ("expire", -100)
    with loyalty.client(Role.AGENT) as client:
        redeemed = client.post(f"/v1/customers/{customer_id}/redemptions", json={"points": 250})
    assert redeemed.status_code == 201
    remaining = await loyalty.sql(
        "SELECT source_key, remaining FROM points_lots WHERE customer_id = :c ORDER BY earned_at", c=customer_id
    )
    # The redemption emptied the older surviving lot first, then took the rest from the newest.
    assert [r.remaining for r in remaining] == [0, 0, 250]
