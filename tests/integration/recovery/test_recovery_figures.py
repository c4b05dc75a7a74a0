"""Compensation spent per customer tier over a window (the console's KPI board reads it)."""

from datetime import timedelta

from shared.events.vocabulary import CustomerTier, Severity
from tests.integration.recovery.helpers import World, now, resolved, routed, uid


def _tier(figures: dict, tier: str) -> dict:  # type: ignore[type-arg]
    rows = [r for r in figures["by_tier"] if r["customer_tier"] == tier]
    return rows[0] if rows else {"count": 0, "value_minor": 0, "points": 0}


async def test_issued_compensation_is_counted_for_its_tier_in_the_window(world: World) -> None:
    since = (now() - timedelta(minutes=1)).isoformat()
    with world.client() as http:
        before = http.get("/v1/figures", params={"since": since}).json()
    case = routed(uid("cust"), Severity.P3, tier=CustomerTier.POTENTIAL)
    await world.publisher.publish(case, correlation_id=case.complaint_id)
    await world.publisher.publish(resolved(case), correlation_id=case.complaint_id)
    [issued] = await world.events("compensation.issued.v1", lambda e: e.data["case_id"] == case.case_id)

    with world.client() as http:
        after = http.get("/v1/figures", params={"since": since}).json()
        earlier = http.get("/v1/figures", params={"since": (now() - timedelta(days=2)).isoformat(),
                                                  "until": (now() - timedelta(days=1)).isoformat()}).json()
    gained = {k: _tier(after, "potential")[k] - _tier(before, "potential")[k] for k in ("count", "points")}
    assert gained == {"count": 1, "points": issued.data["remedy"]["points"]}
    assert _tier(earlier, "potential")["count"] == 0


def test_figures_refuse_a_reversed_window_and_anonymous_callers(world: World) -> None:
    with world.client() as http:
        reversed_window = http.get("/v1/figures", params={"since": now().isoformat(),
                                                          "until": (now() - timedelta(hours=1)).isoformat()})
        bad_time = http.get("/v1/figures", params={"since": "yesterday"})
    with world.client(role=None) as anonymous:
        unauthenticated = anonymous.get("/v1/figures")
    assert reversed_window.status_code == 422
    assert reversed_window.json()["errors"][0]["field"] == "query.since"
    assert bad_time.status_code == 422
    assert unauthenticated.status_code == 401
