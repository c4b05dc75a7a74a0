"""Recovery end to end through the running service: events in, decisions, offers, approvals, the ledger."""

from datetime import timedelta

import pytest

from services.recovery.web import encode_cursor
from shared.events.vocabulary import CustomerTier, Role, Severity
from tests.integration.recovery.helpers import World, breached, now, resolved, routed, survey, tier_changed, uid

pytestmark = pytest.mark.slow

HIGH, MID = CustomerTier.HIGH_VALUE, CustomerTier.MID_VALUE


async def _issued(world: World, case_id: str, reason: str = "case_resolved") -> dict:
    [env] = await world.events(
        "compensation.issued.v1", lambda e: e.data["case_id"] == case_id and e.data["reason"] == reason
    )
    return env.data


async def test_single_option_is_issued_at_once_into_the_ledger(world: World) -> None:
    case = routed(uid("cust"), Severity.P3)
    await world.publisher.publish(case, correlation_id=case.complaint_id)
    cause = await world.publisher.publish(resolved(case), correlation_id=case.complaint_id)
    [issued] = await world.events("compensation.issued.v1", lambda e: e.data["case_id"] == case.case_id)

    assert issued.correlationid == case.complaint_id
    assert issued.causationid == cause.id
    assert issued.partitionkey == case.customer_id
    assert issued.data["remedy"]["points"] == 2000
    assert issued.data["chosen_by"] == "only_option"
    assert any(r.startswith("matrix.potential.P3") for r in issued.data["reasons"])
    with world.client() as http:
        page = http.get("/v1/compensations", params={"case_id": case.case_id}).json()
        ledger = http.get("/v1/ledger", params={"customer_id": case.customer_id}).json()
    assert [c["status"] for c in page["items"]] == ["issued"]
    assert [(e["entry_kind"], e["points"], e["value_minor"]) for e in ledger] == [("issue", 2000, 2000)]


async def test_redelivered_and_repeated_events_never_pay_twice(world: World) -> None:
    case = routed(uid("cust"), Severity.P3)
    await world.publisher.publish(case)
    first = await world.publisher.publish(resolved(case))
    await world.publisher.send(first)  # the same event again (a redelivery)
    await world.publisher.publish(resolved(case))  # another resolution event of the same case
    await _issued(world, case.case_id)
    await world.settle(2)
    rows = await world.sql("SELECT count(*) FROM compensation_ledger WHERE case_id = :c", c=case.case_id)
    assert rows[0][0] == 1
    assert (
        len([e for e in world.tap.events if e.type == "compensation.issued.v1" and e.data["case_id"] == case.case_id])
        == 1
    )


async def test_choice_is_offered_and_the_customer_choice_issued(world: World) -> None:
    customer = uid("cust")
    case = routed(customer, Severity.P2, tier=MID)
    await world.publisher.publish(case)
    await world.publisher.publish(resolved(case))
    [offer] = await world.events("compensation.offered.v1", lambda e: e.data["case_id"] == case.case_id)
    assert [o["option_id"] for o in offer.data["options"]] == ["credit", "coupon", "points"]
    assert offer.data["default_option_id"] == "credit"
    cid = offer.data["compensation_id"]

    with world.client() as http:
        unknown = http.post(f"/v1/compensations/{cid}/accept", json={"option_id": "cash"})
        chosen = http.post(f"/v1/compensations/{cid}/accept", json={"option_id": "coupon"})
        again = http.post(f"/v1/compensations/{cid}/accept", json={"option_id": "points"})
    assert unknown.status_code == 422 and unknown.json()["type"].endswith("unknown-option")
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["status"] == "issued" and chosen.json()["chosen_option_id"] == "coupon"
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    issued = await _issued(world, case.case_id)
    assert issued["remedy"]["kind"] == "coupon_amount" and issued["remedy"]["amount_minor"] == 8000
    assert issued["chosen_by"] == "customer"
    # The expiry timer was cancelled: letting the clock run out changes nothing.
    await world.expire_now(cid)
    await world.settle(1.5)
    assert (
        len([e for e in world.tap.events if e.type == "compensation.issued.v1" and e.data["compensation_id"] == cid])
        == 1
    )


async def test_expired_offer_applies_the_default_once(world: World) -> None:
    case = routed(uid("cust"), Severity.P2, tier=MID)
    await world.publisher.publish(case)
    await world.publisher.publish(resolved(case))
    [offer] = await world.events("compensation.offered.v1", lambda e: e.data["case_id"] == case.case_id)
    cid = offer.data["compensation_id"]
    await world.expire_now(cid)
    issued = await _issued(world, case.case_id)
    assert issued["chosen_by"] == "default_on_expiry"
    assert issued["remedy"]["option_id"] == "credit"
    with world.client() as http:
        late = http.post(f"/v1/compensations/{cid}/accept", json={"option_id": "coupon"})
    assert late.status_code == 409
    await world.expire_now(cid)  # a timer never fires twice, even when pushed again
    await world.settle(1.5)
    rows = await world.sql("SELECT count(*) FROM compensation_ledger WHERE compensation_id = :c", c=cid)
    assert rows[0][0] == 1


async def test_above_the_agent_limit_waits_for_a_role_that_may_approve(world: World) -> None:
    customer = uid("vip")
    await world.publisher.publish(tier_changed(customer, HIGH))
    case = routed(customer, Severity.P1, tier=CustomerTier.POTENTIAL)  # routing's view is stale: projection wins
    await world.publisher.publish(case)
    await world.publisher.publish(resolved(case))
    [pending] = await world.events("compensation.pending_approval.v1", lambda e: e.data["case_id"] == case.case_id)
    assert pending.data["required_role"] == "supervisor"
    assert pending.data["value_minor"] == 30000
    cid = pending.data["compensation_id"]

    with world.client(Role.AGENT) as agent:
        refused = agent.post(f"/v1/compensations/{cid}/approve", json={})
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("over-limit")
    assert "needs supervisor" in refused.json()["detail"]
    with world.client(Role.SUPERVISOR, "sup-zhao") as supervisor:
        approved = supervisor.post(f"/v1/compensations/{cid}/approve", json={"note": "VIP, outage at home"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "offered"
    [offer] = await world.events("compensation.offered.v1", lambda e: e.data["compensation_id"] == cid)
    assert offer.causationid == pending.id
    with world.client() as http:
        assert http.post(f"/v1/compensations/{cid}/accept", json={"option_id": "points"}).status_code == 200
    issued = await _issued(world, case.case_id)
    assert issued["approved_by"] == "sup-zhao"
    assert issued["customer_tier"] == "high_value"


async def test_rejection_releases_the_budget_reservation(world: World) -> None:
    customer = uid("vip")
    await world.publisher.publish(tier_changed(customer, HIGH))
    case = routed(customer, Severity.P1, tier=HIGH)
    await world.publisher.publish(case)
    await world.publisher.publish(resolved(case))
    [pending] = await world.events("compensation.pending_approval.v1", lambda e: e.data["case_id"] == case.case_id)
    cid = pending.data["compensation_id"]
    with world.client(Role.MANAGER, "mgr-chen") as http:
        before = {b["department"]: b for b in http.get("/v1/budgets").json()}["logistics"]
        assert http.post(f"/v1/compensations/{cid}/reject", json={}).status_code == 422  # a note is required
        rejected = http.post(f"/v1/compensations/{cid}/reject", json={"note": "duplicate of a goodwill gesture"})
        after = {b["department"]: b for b in http.get("/v1/budgets").json()}["logistics"]
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert before["reserved_minor"] - after["reserved_minor"] == 30000
    await world.events("compensation.rejected.v1", lambda e: e.data["compensation_id"] == cid)


async def test_sla_breach_pays_the_delay_at_once_and_only_once(world: World) -> None:
    customer = uid("cust")
    case = routed(customer, Severity.P2, tier=MID)
    await world.publisher.publish(case)
    await world.publisher.publish(breached(case, "first_response"))
    await world.publisher.publish(breached(case, "resolution"))
    [offer] = await world.events(
        "compensation.offered.v1", lambda e: e.data["case_id"] == case.case_id and e.data["reason"] == "sla_breach"
    )
    assert [o["option_id"] for o in offer.data["options"]] == ["coupon", "points"]
    await world.publisher.publish(resolved(case, sla_breached=True))
    [resolution] = await world.events(
        "compensation.offered.v1", lambda e: e.data["case_id"] == case.case_id and e.data["reason"] == "case_resolved"
    )
    # The delay was compensated on its own, so the resolution is not uplifted for it again.
    assert {o["option_id"]: o["amount_minor"] for o in resolution.data["options"]}["credit"] == 5000
    assert any("delay was compensated on its own" in r for r in resolution.data["reasons"])
    rows = await world.sql(
        "SELECT count(*) FROM compensations WHERE case_id = :c AND reason = 'sla_breach'", c=case.case_id
    )
    assert rows[0][0] == 1


async def test_low_survey_earns_goodwill_once_per_case(world: World) -> None:
    case = routed(uid("cust"), Severity.P3)
    await world.publisher.publish(case)
    await world.publisher.publish(survey(case, csat=4, nps=9))  # happy: nothing
    await world.publisher.publish(survey(case, csat=2))
    await world.publisher.publish(survey(case, nps=3))  # a second low answer about the same case
    issued = await _issued(world, case.case_id, "low_survey")
    assert issued["remedy"]["kind"] == "coupon_amount"
    await world.settle(1.5)
    rows = await world.sql("SELECT count(*) FROM compensations WHERE case_id = :c", c=case.case_id)
    assert rows[0][0] == 1


async def test_reversal_is_a_new_ledger_entry_and_the_ledger_refuses_edits(world: World) -> None:
    case = routed(uid("cust"), Severity.P3)
    await world.publisher.publish(case)
    await world.publisher.publish(resolved(case))
    cid = (await _issued(world, case.case_id))["compensation_id"]
    with world.client(Role.AGENT) as agent:
        assert agent.post(f"/v1/compensations/{cid}/reverse", json={"note": "x"}).status_code == 403
    with world.client(Role.SUPERVISOR, "sup-zhao") as http:
        reversed_ = http.post(f"/v1/compensations/{cid}/reverse", json={"note": "customer returned the goods"})
        twice = http.post(f"/v1/compensations/{cid}/reverse", json={"note": "again"})
        detail = http.get(f"/v1/compensations/{cid}").json()
    assert reversed_.status_code == 200 and reversed_.json()["status"] == "reversed"
    assert twice.status_code == 409
    entries = [(e["entry_kind"], e["points"], e["value_minor"]) for e in detail["ledger"]]
    assert entries == [("issue", 2000, 2000), ("reversal", -2000, -2000)]
    assert detail["ledger"][1]["reverses_entry_id"] == detail["ledger"][0]["id"]
    await world.events("compensation.reversed.v1", lambda e: e.data["compensation_id"] == cid)
    with pytest.raises(Exception, match="append-only"):
        await world.sql("UPDATE compensation_ledger SET points = 0 WHERE compensation_id = :c", c=cid)
    with pytest.raises(Exception, match="append-only"):
        await world.sql("DELETE FROM compensation_ledger WHERE compensation_id = :c", c=cid)


async def test_preview_explains_without_issuing(world: World) -> None:
    customer = uid("cust")
    case = routed(customer, Severity.P1, tier=MID)
    await world.publisher.publish(case)
    await world.until(lambda: world.sql("SELECT 1 FROM cases WHERE case_id = :c", c=case.case_id))
    with world.client() as http:
        preview = http.get(f"/v1/cases/{case.case_id}/decision")
        as_manager = http.get(f"/v1/cases/{case.case_id}/decision", params={"role": "manager", "reason": "sla_breach"})
        missing = http.get("/v1/cases/no-such-case/decision")
        bad_reason = http.get(f"/v1/cases/{case.case_id}/decision", params={"reason": "incident"})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["customer_tier"] == "mid_value" and body["default_option_id"] == "credit"
    assert any(r.startswith("matrix.mid_value.P1") for r in body["reasons"])
    assert as_manager.json()["reason"] == "sla_breach"
    assert missing.status_code == 404 and missing.json()["type"].endswith("unknown-case")
    assert bad_reason.status_code == 422
    assert not await world.sql("SELECT 1 FROM compensations WHERE case_id = :c", c=case.case_id)


async def test_manual_compensation_caps_limits_and_idempotency(world: World) -> None:
    customer = uid("cust")
    body = {
        "customer_id": customer,
        "remedy": {"kind": "account_credit", "amount_minor": 25000},
        "note": "apology for a rude courier",
    }
    with world.client(Role.AGENT) as http:
        first = http.post("/v1/compensations", json=body, headers={"Idempotency-Key": "k-" + customer})
        replay = http.post("/v1/compensations", json=body, headers={"Idempotency-Key": "k-" + customer})
        negative = http.post(
            "/v1/compensations", json={**body, "remedy": {"kind": "account_credit", "amount_minor": -100}}
        )
        unknown_case = http.post("/v1/compensations", json={**body, "case_id": "no-such-case"})
        wrong_currency = http.post("/v1/compensations", json={**body, "remedy": {**body["remedy"], "currency": "USD"}})
    assert first.status_code == 201, first.text
    # 250 yuan fits the potential cap (300) but is above the agent's own limit (200).
    assert first.json()["status"] == "pending_approval" and first.json()["required_role"] == "supervisor"
    assert replay.status_code == 201 and replay.json() == first.json()
    assert negative.status_code == 422
    assert [e["field"] for e in negative.json()["errors"]] == ["body.remedy.amount_minor"]
    assert unknown_case.status_code == 404
    assert wrong_currency.status_code == 422
    rows = await world.sql("SELECT count(*) FROM compensations WHERE customer_id = :c", c=customer)
    assert rows[0][0] == 1
    with world.client(Role.SUPERVISOR, "sup-zhao") as http:
        over_cap = http.post(
            "/v1/compensations", json={**body, "remedy": {"kind": "account_credit", "amount_minor": 20000}}
        )
    # 250 reserved + 200 asked > 300 cap: cut to the 50 left.
    assert over_cap.status_code == 201
    assert over_cap.json()["options"][0]["amount_minor"] == 5000


async def test_bad_requests_get_problem_json(world: World) -> None:
    with world.client(role=None) as anonymous:
        assert anonymous.get("/v1/policy").status_code == 401
    with world.client() as http:
        policy = http.get("/v1/policy")
        no_filter = http.get("/v1/compensations")
        bad_cursor = http.get("/v1/compensations", params={"customer_id": "x", "cursor": "%%%"})
        unknown = http.post("/v1/compensations/nope/approve", json={})
        extra_field = http.post("/v1/compensations/nope/accept", json={"option_id": "a", "tip": 1})
        budgets = http.get("/v1/budgets")
        forged_cursor = http.get("/v1/compensations", params={"customer_id": "x", "cursor": encode_cursor(["x", "y"])})
        nul_query = http.get("/v1/compensations", params={"customer_id": "a\x00b"})
        nul_body = http.post(
            "/v1/compensations",
            json={"customer_id": "c1", "note": "sorry\x00", "remedy": {"kind": "points", "points": 1000}},
        )
    assert policy.status_code == 200 and policy.json()["version"]
    for response, status in (
        (no_filter, 422),
        (bad_cursor, 422),
        (unknown, 404),
        (extra_field, 422),
        (budgets, 403),
        (forged_cursor, 422),
        (nul_query, 422),
        (nul_body, 422),
    ):
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in nul_body.json()["errors"]] == ["body.note"]


async def test_listing_pages_with_a_cursor(world: World) -> None:
    customer = uid("cust")
    with world.client(Role.SUPERVISOR, "sup-zhao") as http:
        for i in range(3):
            body = {"customer_id": customer, "remedy": {"kind": "points", "points": 1000 + i}, "note": f"n{i}"}
            assert http.post("/v1/compensations", json=body).status_code == 201
        first = http.get("/v1/compensations", params={"customer_id": customer, "limit": 2}).json()
        second = http.get(
            "/v1/compensations", params={"customer_id": customer, "limit": 2, "cursor": first["next_cursor"]}
        ).json()
        view = http.get(f"/v1/customers/{customer}").json()
    assert len(first["items"]) == 2 and len(second["items"]) == 1 and second["next_cursor"] is None
    points = [c["options"][0]["points"] for c in first["items"] + second["items"]]
    assert points == [1002, 1001, 1000]
    assert view["received_count"] == 3 and view["received_minor"] == 3003 and view["tier"] == "potential"


async def test_tier_projection_keeps_the_newest_change(world: World) -> None:
    customer = uid("cust")
    newer, older = now(), now() - timedelta(days=2)
    await world.publisher.publish(tier_changed(customer, HIGH, region="hangzhou", at=newer))
    late = await world.publisher.publish(tier_changed(customer, MID, at=older))  # delivered late, older
    await world.until(lambda: world.sql("SELECT 1 FROM inbox WHERE event_id = :e", e=late.id))
    with world.client() as http:
        view = http.get(f"/v1/customers/{customer}").json()
    assert (view["tier"], view["tier_known"], view["region"]) == ("high_value", True, "hangzhou")
    assert view["cap_minor"] == 100_000
