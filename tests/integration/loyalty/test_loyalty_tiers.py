"""Purchases drive points and tiers; tiers bring benefits; referrals, the loyalty award and the roll-over."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.events.orders import OrderCompleted, OrderRefunded
from shared.events.vocabulary import Role
from tests.integration.loyalty.helpers import Bus, Loyalty, eventually, new_id, now, view_when

LOCAL = ZoneInfo("Asia/Shanghai")
YUAN = 100


def order(customer_id: str, yuan: int, at: datetime | None = None, order_id: str | None = None) -> OrderCompleted:
    return OrderCompleted(order_id=order_id or new_id("ord"), customer_id=customer_id, amount_minor=yuan * YUAN,
                          completed_at=at or now())


def of(customer_id: str, event_type: str):  # type: ignore[no-untyped-def]
    return lambda e: e.type == event_type and e.data.get("customer_id") == customer_id


async def test_purchases_earn_points_at_the_tier_and_move_the_tier(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    async with bus.tap() as tap:
        await bus.publish(order(customer_id, 6_000))  # potential: 1 point per yuan
        await bus.publish(order(customer_id, 1_000))  # first repeat purchase: mid value afterwards
        await bus.publish(order(customer_id, 500))  # mid value earns double
        last = order(customer_id, 100)
        await bus.publish(last)  # third repeat purchase: high value
        await tap.wait_for(of(customer_id, "loyalty.tier_changed.v1"), count=2)
        await bus.publish(OrderRefunded(order_id=last.order_id, customer_id=customer_id, amount_minor=100 * YUAN,
                                        refunded_at=now()))
        changes = await tap.wait_for(of(customer_id, "loyalty.tier_changed.v1"), count=3)
        issued = await tap.wait_for(of(customer_id, "loyalty.benefit_issued.v1"), count=4)
    assert [(c.data["from_tier"], c.data["to_tier"]) for c in changes] == [
        ("potential", "mid_value"), ("mid_value", "high_value"), ("high_value", "mid_value"),
    ]
    assert "1 repeat purchase(s) reach mid_value" in changes[0].data["reason"]
    assert changes[1].data["repeat_purchases"] == 3
    assert changes[2].data["repeat_purchases"] == 2  # the refunded purchase no longer counts
    assert {(b.data["benefit"], b.data["tier"]) for b in issued} == {
        ("new_customer_pack", "potential"), ("first_after_sales_free", "potential"),
        ("dedicated_adviser", "high_value"), ("free_onsite_service", "high_value"),
    }
    view = loyalty.view(customer_id).json()
    assert view["balance"] == 6_000 + 1_000 + 1_000 + 200 - 200
    assert view["tier"] == "mid_value"
    assert view["progress"] == {
        "year": now().astimezone(LOCAL).year, "annual_spend_minor": 7_500 * YUAN, "repeat_purchases": 2,
        "next_tier": "high_value", "spend_needed_minor": (50_000 - 7_500) * YUAN + 1, "repeat_purchases_needed": 1,
        "currency": "CNY",
    }
    assert {b["code"] for b in view["benefits"]} >= {"birthday_coupon", "double_points", "priority_queue"}
    assert view["redeemable_value_minor"] == 8_000  # 100 points = 1 yuan at mid value
    assert [e["kind"] for e in view["ledger"]["items"]][:2] == ["reverse", "earn"]


async def test_import_backfills_orders_once(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    body = {
        "orders": [
            {"order_id": f"{customer_id}-1", "customer_id": customer_id, "amount_minor": 30_000 * YUAN,
             "completed_at": (now() - timedelta(days=2)).isoformat()},
            {"order_id": f"{customer_id}-2", "customer_id": customer_id, "amount_minor": 25_000 * YUAN,
             "completed_at": (now() - timedelta(days=1)).isoformat()},
        ],
        "refunds": [
            {"order_id": f"{customer_id}-2", "customer_id": customer_id, "amount_minor": 5_000 * YUAN,
             "refunded_at": now().isoformat()},
        ],
    }
    async with bus.tap() as tap:
        with loyalty.client(Role.SUPERVISOR) as client:
            first = client.post("/v1/orders/import", json=body)
            again = client.post("/v1/orders/import", json=body)
        assert first.status_code == again.status_code == 202
        assert first.json() == {"orders": 2, "refunds": 1}
        imported = await tap.wait_for(of(customer_id, "order.completed.v1"), count=4)
        await tap.wait_for(of(customer_id, "order.refunded.v1"), count=2)
        # A sentinel order: once its points are in, both imports were fully applied.
        await bus.publish(order(customer_id, 1))
        view = await eventually(view_when(loyalty, customer_id, lambda v: v["ledger"]["items"][0]["points"] == 2))
    assert imported[0].data["amount_minor"] == 30_000 * YUAN
    # 30,000 at potential; 25,000 at mid (double); a fifth of it refunded (one refund, imported twice);
    # the sentinel at mid (double).
    assert view["balance"] == 30_000 + 50_000 - 10_000 + 2
    assert view["progress"]["annual_spend_minor"] == 50_001 * YUAN  # net spend now above 50,000
    assert view["tier"] == "high_value"


def _one(kind: str, **fields: object) -> dict:
    base = {"order_id": "o", "customer_id": "c", "amount_minor": 1}
    when = {"orders": "completed_at", "refunds": "refunded_at"}[kind]
    return {kind: [{**base, when: "2026-01-01T00:00:00Z", **fields}]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        (_one("orders", amount_minor=-1), "body.orders.0.amount_minor"),
        (_one("orders", completed_at="2026-01-01T00:00:00"), "body.orders.0.completed_at"),  # no time zone
        (_one("refunds", amount_minor=0), "body.refunds.0.amount_minor"),
        (_one("orders", customer_id="c c"), "body.orders.0.customer_id"),
        (_one("orders", currency="yuan"), "body.orders.0.currency"),
    ],
)
def test_import_bad_input(loyalty: Loyalty, body: dict, field: str) -> None:
    with loyalty.client(Role.SUPERVISOR) as client:
        response = client.post("/v1/orders/import", json=body)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]


def test_import_needs_a_supervisor(loyalty: Loyalty) -> None:
    body = {"orders": [{"order_id": "o", "customer_id": "c", "amount_minor": 1, "completed_at": now().isoformat()}]}
    with loyalty.client() as anonymous:
        assert anonymous.post("/v1/orders/import", json=body).status_code == 401
    with loyalty.client(Role.AGENT) as agent:
        assert agent.post("/v1/orders/import", json=body).status_code == 403


async def test_refund_of_an_unknown_order_is_dead_lettered(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    async with bus.tap() as tap:
        await bus.publish(OrderRefunded(order_id=new_id("ord"), customer_id=customer_id, amount_minor=100,
                                        refunded_at=now()))
        await bus.publish(order(customer_id, 10))  # the consumer keeps going
        dead = await tap.wait_for_item(lambda i: i.topic == "redress.dlq.v1" and i.key == customer_id)
        await eventually(view_when(loyalty, customer_id, lambda v: v["balance"] == 10))
    assert "unknown order" in dead.headers["dlq_error"]
    assert dead.headers["dlq_consumer"] == "redress-loyalty"


async def test_birthday_coupon_once_in_the_birthday_month(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    await bus.publish(order(customer_id, 12_000))  # mid value by spend
    await eventually(view_when(loyalty, customer_id, lambda v: v["tier"] == "mid_value"))
    month = now().astimezone(LOCAL).month
    async with bus.tap() as tap:
        with loyalty.client(Role.AGENT) as client:
            first = client.put(f"/v1/customers/{customer_id}/profile", json={"birth_month": month})
            again = client.put(f"/v1/customers/{customer_id}/profile", json={"birth_month": month})
        [coupon] = await tap.wait_for(of(customer_id, "loyalty.benefit_issued.v1"))
    assert first.json()["benefits_issued"] == ["birthday_coupon"]
    assert again.json()["benefits_issued"] == []
    assert (coupon.data["benefit"], coupon.data["coupon_minor"]) == ("birthday_coupon", 100 * YUAN)
    assert coupon.data["period"] == str(now().astimezone(LOCAL).year)
    view = loyalty.view(customer_id).json()
    assert view["birth_month"] == month
    birthday = next(b for b in view["benefits"] if b["code"] == "birthday_coupon")
    assert birthday["issued_periods"] == [coupon.data["period"]]


def test_profile_bad_input(loyalty: Loyalty) -> None:
    with loyalty.client(Role.AGENT) as client:
        assert client.put("/v1/customers/c/profile", json={"birth_month": 13}).status_code == 422
        assert client.put("/v1/customers/c/profile", json={"birth_month": "May"}).status_code == 422
    with loyalty.client() as anonymous:
        assert anonymous.put("/v1/customers/c/profile", json={"birth_month": 5}).status_code == 401


async def test_referral_rewards_both_sides_on_the_first_purchase(loyalty: Loyalty, bus: Bus) -> None:
    referrer, newcomer = new_id("ref"), new_id("new")
    with loyalty.client(Role.AGENT) as client:
        created = client.post("/v1/referrals", json={"referrer_id": referrer, "new_customer_id": newcomer})
        twice = client.post("/v1/referrals", json={"referrer_id": new_id("x"), "new_customer_id": newcomer})
        self_ref = client.post("/v1/referrals", json={"referrer_id": referrer, "new_customer_id": referrer})
        missing = client.post("/v1/referrals", json={"referrer_id": referrer})
    assert created.status_code == 201 and created.json()["status"] == "pending"
    assert twice.status_code == 409 and self_ref.status_code == 422 and missing.status_code == 422
    async with bus.tap() as tap:
        await bus.publish(order(newcomer, 300))
        rewards = await tap.wait_for(
            lambda e: e.type == "loyalty.benefit_issued.v1" and e.data["benefit"].startswith("referral"), count=2
        )
    assert {(r.data["customer_id"], r.data["benefit"], r.data["coupon_minor"]) for r in rewards} == {
        (referrer, "referral_referrer_coupon", 100 * YUAN), (newcomer, "referral_new_customer_coupon", 50 * YUAN),
    }
    with loyalty.client(Role.AGENT) as client:
        late = client.post("/v1/referrals", json={"referrer_id": new_id("x"), "new_customer_id": newcomer})
    assert late.status_code == 409  # a customer who already bought is not new


async def test_five_consecutive_years_earn_the_loyalty_award(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    this_year = now().astimezone(LOCAL).year
    orders = [
        {"order_id": f"{customer_id}-{y}", "customer_id": customer_id, "amount_minor": 10 * YUAN,
         "completed_at": datetime(y, 6, 1, tzinfo=LOCAL).isoformat()}
        for y in range(this_year - 4, this_year)
    ] + [{"order_id": f"{customer_id}-now", "customer_id": customer_id, "amount_minor": 10 * YUAN,
          "completed_at": now().isoformat()}]
    async with bus.tap() as tap:
        with loyalty.client(Role.SUPERVISOR) as client:
            assert client.post("/v1/orders/import", json={"orders": orders}).status_code == 202
        [award] = await tap.wait_for(lambda e: e.type == "loyalty.benefit_issued.v1"
                                     and e.data["customer_id"] == customer_id and e.data["benefit"] == "loyalty_award")
    assert (award.data["period"], award.data["points"]) == (str(this_year), 5_000)
    view = await eventually(view_when(loyalty, customer_id, lambda v: any(
        "loyalty_award" in e["reason"] for e in v["ledger"]["items"])))
    assert any(b["benefit"] == "loyalty_award" for b in view["issued_benefits"])


async def test_yearly_roll_over_drops_a_tier_nobody_renewed(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    await bus.publish(order(customer_id, 60_000))
    await eventually(view_when(loyalty, customer_id, lambda v: v["tier"] == "high_value"))
    async with bus.tap() as tap:
        # Two years pass: the purchase now belongs to the year before last, and the tier was computed last year.
        await loyalty.sql("UPDATE orders SET year = year - 2 WHERE customer_id = :c", c=customer_id)
        await loyalty.sql("UPDATE customers SET tier_year = tier_year - 1 WHERE customer_id = :c", c=customer_id)
        [change] = await tap.wait_for(of(customer_id, "loyalty.tier_changed.v1"))
    assert (change.data["from_tier"], change.data["to_tier"]) == ("high_value", "potential")
    assert loyalty.view(customer_id).json()["tier"] == "potential"


def test_view_of_an_unknown_customer_is_404(loyalty: Loyalty) -> None:
    response = loyalty.view(new_id("nobody"))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert loyalty.view("c", ledger_limit=0).status_code == 422
