"""Care follow-ups on days 3 and 7 (durable timers), cancelled by a new complaint; churn-risk signals."""

from collections.abc import Callable
from datetime import datetime, timedelta

from shared.events.cases import CaseReopened, CaseSlaBreached
from shared.events.complaints import Classification, ComplaintReceived
from shared.events.orders import OrderCompleted
from shared.events.vocabulary import Category, Channel, CustomerTier, Role, Severity
from tests.integration.loyalty.helpers import Bus, Loyalty, eventually, new_id, now, view_when
from tests.integration.loyalty.test_loyalty_ledger import compensation
from tests.integration.loyalty.test_loyalty_surveys import resolved


def complaint(customer_id: str, at: datetime | None = None) -> ComplaintReceived:
    return ComplaintReceived(
        complaint_id=new_id("cmp"), customer_id=customer_id, channel=Channel.WEB, received_at=at or now(),
        text="又坏了 it broke again", classification=Classification(category=Category.PRODUCT_USAGE),
    )


def care(loyalty: Loyalty, customer_id: str) -> dict:
    with loyalty.client(Role.AGENT) as client:
        response = client.get(f"/v1/customers/{customer_id}/care")
    assert response.status_code == 200, response.text
    return response.json()


def care_when(loyalty: Loyalty, customer_id: str, check: Callable[[dict], bool]) -> Callable[[], dict | None]:
    """A probe returning the care view once the customer is known and `check` holds."""

    def probe() -> dict | None:
        with loyalty.client(Role.AGENT) as client:
            response = client.get(f"/v1/customers/{customer_id}/care")
        return response.json() if response.status_code == 200 and check(response.json()) else None

    return probe


def statuses(view: dict) -> dict[int, str]:
    return {f["day"]: f["status"] for f in view["followups"]}


async def make_due(loyalty: Loyalty, case_id: str, day: int) -> None:
    """Let time pass: the follow-up's durable timer becomes due now."""
    await loyalty.sql("UPDATE timers SET due_at = :t WHERE kind = 'loyalty.care_followup' AND key LIKE :k",
                      t=now() - timedelta(seconds=1), k=f"{case_id}@%#d{day}")


async def test_followups_on_day_3_and_7_cancelled_by_a_new_complaint(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    case = resolved(customer_id)
    async with bus.tap() as tap:
        await bus.publish(case, correlation_id=case.complaint_id)
        await tap.wait_for(lambda e: e.type == "survey.issued.v1" and e.data["case_id"] == case.case_id)
        scheduled = care(loyalty, customer_id)
        await make_due(loyalty, case.case_id, 3)
        [due] = await tap.wait_for(lambda e: e.type == "care.followup_due.v1" and e.data["case_id"] == case.case_id)
    assert {f["day"]: f["due_at"][:19] for f in scheduled["followups"]} == {
        3: (case.resolved_at + timedelta(days=3)).isoformat()[:19],
        7: (case.resolved_at + timedelta(days=7)).isoformat()[:19],
    }
    assert (due.data["day"], due.data["customer_id"]) == (3, customer_id)
    assert due.correlationid == case.complaint_id
    assert statuses(care(loyalty, customer_id)) == {3: "due", 7: "pending"}

    await bus.publish(complaint(customer_id))
    view = await eventually(care_when(loyalty, customer_id, lambda v: statuses(v)[7] == "cancelled"))
    assert statuses(view) == {3: "due", 7: "cancelled"}
    [timer] = await loyalty.sql("SELECT cancelled_at, fired_at FROM timers WHERE kind = 'loyalty.care_followup' "
                                "AND key LIKE :k", k=f"{case.case_id}@%#d7")
    assert timer.cancelled_at is not None and timer.fired_at is None


async def test_reopened_case_cancels_its_followups(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    case = resolved(customer_id)
    await bus.publish(case)
    await eventually(care_when(loyalty, customer_id, lambda v: len(v["followups"]) == 2))
    await bus.publish(CaseReopened(case_id=case.case_id, complaint_id=case.complaint_id, customer_id=customer_id,
                                   at=now(), by="agent-2", reason="not fixed"))
    view = await eventually(care_when(loyalty, customer_id, lambda v: set(statuses(v).values()) == {"cancelled"}))
    assert statuses(view) == {3: "cancelled", 7: "cancelled"}


def breach(customer_id: str, tier: CustomerTier) -> CaseSlaBreached:
    return CaseSlaBreached(case_id=new_id("case"), complaint_id=new_id("cmp"), customer_id=customer_id,
                           clock="resolution", due_at=now(), severity=Severity.P2, customer_tier=tier)


async def test_sla_breach_on_a_high_value_customer_is_a_churn_risk(loyalty: Loyalty, bus: Bus) -> None:
    vip, regular = new_id("vip"), new_id("reg")
    await bus.publish(OrderCompleted(order_id=new_id("ord"), customer_id=vip, amount_minor=60_000_00,
                                     completed_at=now()))
    await eventually(view_when(loyalty, vip, lambda v: v["tier"] == "high_value"))
    async with bus.tap() as tap:
        await bus.publish(breach(vip, CustomerTier.HIGH_VALUE))
        await bus.publish(breach(regular, CustomerTier.POTENTIAL))
        # Sentinel on the same topic and key: once its survey is out, the regular's breach was handled.
        sentinel = resolved(regular)
        await bus.publish(sentinel)
        await tap.wait_for(lambda e: e.type == "survey.issued.v1" and e.data["case_id"] == sentinel.case_id)
        [alert] = await tap.wait_for(lambda e: e.type == "care.churn_risk.v1" and e.data["customer_id"] == vip)
        regular_alerts = [e for e in tap.events if e.type == "care.churn_risk.v1" and e.data["customer_id"] == regular]
    assert alert.data["signals"] == ["sla_breach_high_value"]
    assert alert.data["customer_tier"] == "high_value"
    assert regular_alerts == []
    assert care(loyalty, vip)["last_churn_alert_at"] is not None


async def test_a_breach_trusts_the_cases_tier_for_a_customer_known_only_through_a_grant(
    loyalty: Loyalty, bus: Bus
) -> None:
    # An incident's grant creates the customer settled for the year (tier columns written), yet
    # loyalty has no purchases for them: the case's high-value tier is still the one to go by.
    customer_id = new_id("cust")
    await bus.publish(compensation(customer_id, 100, reason="incident"))
    await eventually(view_when(loyalty, customer_id, lambda v: v["balance"] == 100))
    async with bus.tap() as tap:
        await bus.publish(breach(customer_id, CustomerTier.HIGH_VALUE))
        [alert] = await tap.wait_for(
            lambda e: e.type == "care.churn_risk.v1" and e.data["customer_id"] == customer_id
        )
    assert alert.data["signals"] == ["sla_breach_high_value"]
    assert alert.data["customer_tier"] == "high_value"


async def test_rising_complaints_raise_one_alert_per_cooldown(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    async with bus.tap() as tap:
        await bus.publish(complaint(customer_id, now() - timedelta(days=200)))  # long ago: not "rising"
        await bus.publish(complaint(customer_id, now() - timedelta(days=10)))
        await bus.publish(complaint(customer_id))
        await bus.publish(complaint(customer_id))
        [alert] = await tap.wait_for(lambda e: e.type == "care.churn_risk.v1" and e.data["customer_id"] == customer_id)
    assert alert.data["signals"] == ["rising_complaint_rate"]
    seen = await eventually(lambda: _count(loyalty, "SELECT count(*) FROM complaints_seen WHERE customer_id = :c",
                                           customer_id, 4))
    assert seen
    # Every complaint was handled in the transaction that would have written an alert: only one was.
    alerts = await loyalty.sql("SELECT count(*) FROM outbox WHERE event_type = 'care.churn_risk.v1' "
                               "AND envelope LIKE :c", c=f"%{customer_id}%")
    assert alerts[0][0] == 1


async def _count(loyalty: Loyalty, statement: str, customer_id: str, expected: int) -> bool:
    rows = await loyalty.sql(statement, c=customer_id)
    return rows[0][0] == expected


def test_care_view_needs_an_operator_and_a_known_customer(loyalty: Loyalty) -> None:
    with loyalty.client() as anonymous:
        assert anonymous.get("/v1/customers/c/care").status_code == 401
    with loyalty.client(Role.AGENT) as client:
        assert client.get(f"/v1/customers/{new_id('nobody')}/care").status_code == 404
