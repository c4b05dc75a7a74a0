"""The operator API of the running routing service: cases, actions, queues, figures and their errors."""

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.devstack import ServiceProcess
from shared.envelope import Envelope
from shared.events.complaints import ComplaintFollowedUp
from shared.events.loyalty import TierChanged
from shared.events.vocabulary import Channel, CustomerTier, Role
from shared.topics import Topic
from tests.integration.routing.conftest import client, complaint, wait_unique
from tests.support.events import EventTap

PROBLEM = "application/problem+json"


@pytest.fixture
async def tap(routing_env: dict[str, str]) -> AsyncIterator[EventTap]:
    async with EventTap(routing_env["KAFKA_BOOTSTRAP_SERVERS"], [str(Topic.CASES)]) as watching:
        yield watching


async def routed_case(tap: EventTap, publish: Any, **fields: Any) -> Envelope:
    """Publish a complaint and wait for its case.routed.v1."""
    sent = await publish(complaint(**fields))
    [routed] = await wait_unique(tap, lambda e: e.type == "case.routed.v1" and e.correlationid == sent.subject)
    return routed


def of_case(case_id: str, event_type: str) -> Any:
    return lambda e: e.type == event_type and e.subject == case_id


def assert_problem(response: Any, status: int, text: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and text in body["detail"]
    return body


async def test_complaint_becomes_a_case_with_tier_owner_queue_and_three_clocks(
    routing: ServiceProcess, tap: EventTap, publish: Any
) -> None:
    routed = await routed_case(tap, publish, category="account_anomaly", cues=("money_lost",))
    data = routed.data
    assert (data["severity"], data["queue"], data["customer_tier"]) == ("P1", "accounts_security", "potential")
    assert data["severity_reasons"][-1] == "result P1"
    received = datetime.fromisoformat(data["received_at"])
    assert datetime.fromisoformat(data["deadlines"]["first_response_due"]) == received + timedelta(minutes=30)
    assert datetime.fromisoformat(data["deadlines"]["next_update_due"]) == received + timedelta(hours=1)
    assert datetime.fromisoformat(data["deadlines"]["resolution_due"]) == received + timedelta(hours=8)
    with client(routing) as http:
        case = http.get(f"/v1/cases/{data['case_id']}").json()
    assert [c["name"] for c in case["clocks"]] == ["first_response", "next_update", "resolution"]
    assert {c["status"] for c in case["clocks"]} == {"running"}
    assert (case["state"], case["owner"], case["level"], case["risk"]) == ("new", None, "agent", "on_track")
    assert case["history"][0]["name"] == "route" and case["history"][1]["name"] == "case.routed.v1"


async def test_an_operator_works_a_case_from_first_response_to_reopen(
    routing: ServiceProcess, tap: EventTap, publish: Any
) -> None:
    case_id = (await routed_case(tap, publish)).data["case_id"]
    li, wang = client(routing, Role.AGENT, "agent-li"), client(routing, Role.AGENT, "agent-wang")
    supervisor = client(routing, Role.SUPERVISOR, "sup-zhao")
    with li, wang, supervisor:
        acked = li.post(f"/v1/cases/{case_id}/acknowledge")
        assert acked.status_code == 200, acked.text
        assert (acked.json()["state"], acked.json()["owner"]) == ("open", "agent-li")
        handed = li.post(f"/v1/cases/{case_id}/handoff", json={"to_queue": "billing", "reason": "refund needed"})
        assert handed.json()["queue"] == "billing" and handed.json()["pending_handoff"]["to_queue"] == "billing"
        taken = wang.post(f"/v1/cases/{case_id}/acknowledge").json()
        assert (taken["owner"], taken["assignee"], taken["pending_handoff"]) == ("agent-li", "agent-wang", None)
        assert wang.post(f"/v1/cases/{case_id}/pause", json={"waiting_on": "customer"}).json()["state"] == "waiting"
        assert wang.post(f"/v1/cases/{case_id}/resume").json()["state"] == "open"
        assert wang.post(f"/v1/cases/{case_id}/updates", json={"note": "refund approved"}).status_code == 200
        resolved = wang.post(f"/v1/cases/{case_id}/resolve", json={"resolution_code": "refunded"}).json()
        assert (resolved["state"], resolved["first_handling"]) == ("resolved", False)
        assert_problem(
            wang.post(f"/v1/cases/{case_id}/resolve", json={"resolution_code": "refunded"}), 409, "already resolved"
        )
        assert_problem(
            li.post(f"/v1/cases/{case_id}/reopen", json={"reason": "not fixed"}), 403, "needs role supervisor"
        )
        assert supervisor.post(f"/v1/cases/{case_id}/reopen", json={"reason": "not fixed"}).json()["state"] == "open"
        detail = li.get(f"/v1/cases/{case_id}").json()

    [handed_off] = await wait_unique(tap, of_case(case_id, "case.handed_off.v1"))
    assert (handed_off.data["from_owner"], handed_off.data["to_owner"]) == ("agent-li", "agent-wang")
    assert handed_off.data["handoff_seconds"] >= 0
    events = await wait_unique(tap, lambda e: e.subject == case_id, count=7)
    assert [e.type for e in events] == [
        "case.routed.v1",
        "case.acknowledged.v1",
        "case.handed_off.v1",
        "case.paused.v1",
        "case.resumed.v1",
        "case.resolved.v1",
        "case.reopened.v1",
    ]
    actions = [(h["name"], h["by"], h["role"]) for h in detail["history"] if h["kind"] == "action"]
    assert actions == [
        ("route", "system", None),
        ("acknowledge", "agent-li", "agent"),
        ("handoff", "agent-li", "agent"),
        ("acknowledge", "agent-wang", "agent"),
        ("pause", "agent-wang", "agent"),
        ("resume", "agent-wang", "agent"),
        ("update", "agent-wang", "agent"),
        ("resolve", "agent-wang", "agent"),
        ("reopen", "sup-zhao", "supervisor"),
    ]
    [move] = detail["handoffs"]
    assert (move["from_queue"], move["to_queue"], move["reason"], move["taken_by"]) == (
        "product_support",
        "billing",
        "refund needed",
        "agent-wang",
    )
    assert move["handoff_seconds"] == handed_off.data["handoff_seconds"]


async def test_acknowledge_without_the_role_is_forbidden(routing: ServiceProcess, tap: EventTap, publish: Any) -> None:
    case_id = (await routed_case(tap, publish)).data["case_id"]
    with client(routing, Role.AGENT) as agent, client(routing, None) as anonymous:
        assert_problem(anonymous.post(f"/v1/cases/{case_id}/acknowledge"), 401)
        escalated = agent.post(f"/v1/cases/{case_id}/escalate", json={"reason": "customer is a journalist"})
        assert (escalated.json()["level"], escalated.json()["severity"]) == ("supervisor", "P2")
        body = assert_problem(agent.post(f"/v1/cases/{case_id}/acknowledge"), 403, "needs role supervisor")
        assert body["type"].endswith("/forbidden")
    with client(routing, Role.SUPERVISOR, "sup-zhao") as supervisor:
        assert supervisor.post(f"/v1/cases/{case_id}/acknowledge").json()["owner"] == "sup-zhao"
    [escalation] = await wait_unique(tap, of_case(case_id, "case.escalated.v1"))
    assert (escalation.data["by"], escalation.data["reason"]) == ("agent-li", "customer is a journalist")


async def test_third_handoff_goes_to_the_green_channel(routing: ServiceProcess, tap: EventTap, publish: Any) -> None:
    case_id = (await routed_case(tap, publish, departments=("logistics",))).data["case_id"]
    with client(routing) as http:
        for queue in ("billing", "product_support", "logistics"):
            moved = http.post(f"/v1/cases/{case_id}/handoff", json={"to_queue": queue, "reason": "not ours"})
            assert moved.status_code == 200, moved.text
        case = moved.json()
    assert (case["queue"], case["handoff_count"]) == ("green_channel", 3)
    resolution = next(c for c in case["clocks"] if c["name"] == "resolution")
    assert resolution["target_seconds"] <= 24 * 3600


async def test_queue_lists_filter_and_sort_by_deadline(routing: ServiceProcess, tap: EventTap, publish: Any) -> None:
    customer = "cust-queue-sort"
    for fields in (
        {},
        {"cues": ("legal_threat",)},
        {"category": "policy_question", "departments": ("product_support",)},
    ):
        await routed_case(tap, publish, customer_id=customer, **fields)
    with client(routing) as http:
        queue = http.get("/v1/queues/product_support/cases", params={"sort": "deadline", "limit": 200}).json()
        p2 = http.get("/v1/queues/product_support/cases", params={"severity": "P2"}).json()
        mine = http.get("/v1/cases", params={"customer_id": customer, "sort": "severity"}).json()
        queues = http.get("/v1/queues").json()
        on_track = http.get("/v1/cases", params={"risk": "on_track", "customer_id": customer}).json()
    deadlines = [min(c["due_at"] for c in item["clocks"] if c["status"] == "running") for item in queue["items"]]
    assert deadlines == sorted(deadlines)
    assert p2["items"] and {i["severity"] for i in p2["items"]} == {"P2"}
    assert [i["severity"] for i in mine["items"]] == ["P2", "P3", "P4"]
    assert mine["total"] == 3 and on_track["total"] == 3
    by_name = {q["name"]: q for q in queues}
    assert set(by_name) >= {
        "product_support",
        "accounts_security",
        "billing",
        "logistics",
        "policy_desk",
        "green_channel",
    }
    assert by_name["product_support"]["open"] >= 3 and by_name["product_support"]["calendar"] is None


async def test_case_detail_shows_the_customers_earlier_complaints(
    routing: ServiceProcess, tap: EventTap, publish: Any
) -> None:
    customer = "cust-earlier"
    first = await routed_case(tap, publish, customer_id=customer, text="First: parcel late.")
    second = await routed_case(tap, publish, customer_id=customer, text="Second: parcel still missing.")
    with client(routing) as http:
        detail = http.get(f"/v1/cases/{second.data['case_id']}").json()
    assert [e["case_id"] for e in detail["earlier_complaints"]] == [first.data["case_id"]]
    assert detail["earlier_complaints"][0]["excerpt"] == "First: parcel late."


async def test_customer_tier_comes_from_loyalty_events(routing: ServiceProcess, tap: EventTap, publish: Any) -> None:
    customer = "cust-vip"
    await publish(
        TierChanged(
            customer_id=customer,
            from_tier=None,
            to_tier=CustomerTier.HIGH_VALUE,
            changed_at=datetime.now().astimezone(),
        )
    )
    # Loyalty's topic and the complaints topic are not ordered with each other: wait for the projection.
    with client(routing) as http:
        for _ in range(200):
            if http.get(f"/v1/customers/{customer}").json()["tier"] == "high_value":
                break
            await asyncio.sleep(0.05)
    routed = await routed_case(tap, publish, customer_id=customer)
    assert (routed.data["customer_tier"], routed.data["severity"]) == ("high_value", "P2")
    assert "customer tier high_value: +1 step (not beyond P2)" in routed.data["severity_reasons"]

    with client(routing) as http:
        view = http.get(f"/v1/customers/{customer}").json()
    assert (view["tier"], [c["case_id"] for c in view["cases"]]) == ("high_value", [routed.data["case_id"]])


async def test_a_follow_up_escalates_at_once(routing: ServiceProcess, tap: EventTap, publish: Any) -> None:
    routed = await routed_case(tap, publish)
    data = routed.data
    await publish(
        ComplaintFollowedUp(
            complaint_id=data["complaint_id"],
            customer_id=data["customer_id"],
            channel=Channel.PHONE,
            received_at=datetime.now().astimezone(),
            text="Any news?",
            follow_up_count=1,
        ),
        correlation_id=data["complaint_id"],
    )
    [escalated] = await wait_unique(tap, of_case(data["case_id"], "case.escalated.v1"))
    assert (escalated.data["to_level"], escalated.data["to_severity"], escalated.data["by"]) == (
        "supervisor",
        "P2",
        "customer",
    )
    assert escalated.correlationid == data["complaint_id"]


async def test_a_redelivered_complaint_opens_one_case(routing: ServiceProcess, tap: EventTap, publish: Any) -> None:
    event = complaint()
    await publish(event)
    await publish(event)  # same complaint, a new event id: intake retried
    await wait_unique(tap, lambda e: e.type == "case.routed.v1" and e.correlationid == event.complaint_id)
    with client(routing) as http:
        cases = http.get("/v1/cases", params={"customer_id": event.customer_id}).json()
    assert cases["total"] == 1


async def test_idempotency_key_replays_the_first_answer(routing: ServiceProcess, tap: EventTap, publish: Any) -> None:
    case_id = (await routed_case(tap, publish)).data["case_id"]
    with client(routing) as http:
        first = http.post(f"/v1/cases/{case_id}/acknowledge", headers={"Idempotency-Key": "ack-1"})
        again = http.post(f"/v1/cases/{case_id}/acknowledge", headers={"Idempotency-Key": "ack-1"})
        other_body = http.post(
            f"/v1/cases/{case_id}/escalate", headers={"Idempotency-Key": "esc-1"}, json={"reason": "a"}
        )
        reused = http.post(f"/v1/cases/{case_id}/escalate", headers={"Idempotency-Key": "esc-1"}, json={"reason": "b"})
        detail = http.get(f"/v1/cases/{case_id}").json()
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert other_body.status_code == 200
    assert_problem(reused, 422)
    assert [h["name"] for h in detail["history"]].count("acknowledge") == 1


async def test_figures(routing: ServiceProcess, tap: EventTap, publish: Any) -> None:
    case_id = (await routed_case(tap, publish)).data["case_id"]
    with client(routing) as http:
        http.post(f"/v1/cases/{case_id}/resolve", json={"resolution_code": "answered"})
        figures = http.get("/v1/figures").json()
        narrow = http.get("/v1/figures", params={"since": "2020-01-01T00:00:00Z", "until": "2020-01-02T00:00:00Z"})
    assert figures["cases"] >= 1 and figures["intake_to_routed"]["count"] >= 1
    assert figures["intake_to_routed"]["avg_seconds"] >= 0 and figures["intake_to_routed"]["target_seconds"] == 120
    assert figures["resolution_rate"]["numerator"] >= 1 and figures["first_handling_rate"]["numerator"] >= 1
    assert figures["handoff"]["target_seconds"] == 300
    assert {row["group"] for row in figures["sla_compliance_by_tier"]} <= {"P1", "P2", "P3", "P4"}
    assert any(row["group"] == "product_support" for row in figures["sla_compliance_by_queue"])
    assert narrow.json()["cases"] == 0 and narrow.json()["resolution_rate"]["rate"] is None


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "status", "field"),
    [
        ("post", "/v1/cases/{id}/handoff", {"to_queue": "mars", "reason": "x"}, None, 422, "body.to_queue"),
        ("post", "/v1/cases/{id}/handoff", {"to_queue": "billing"}, None, 422, "body.reason"),
        ("post", "/v1/cases/{id}/handoff", {"to_queue": "billing", "reason": "x", "color": 1}, None, 422, "body.color"),
        ("post", "/v1/cases/{id}/pause", {"waiting_on": "lunch"}, None, 422, "body.waiting_on"),
        ("post", "/v1/cases/{id}/resolve", {"resolution_code": "magic"}, None, 422, "body.resolution_code"),
        ("post", "/v1/cases/{id}/resolve", {}, None, 422, "body.resolution_code"),
        ("post", "/v1/cases/{id}/escalate", {"reason": ""}, None, 422, "body.reason"),
        ("post", "/v1/cases/{id}/reopen", {}, None, 422, "body.reason"),
        ("post", "/v1/cases/{id}/updates", {"note": ""}, None, 422, "body.note"),
        ("get", "/v1/queues/product_support/cases", None, {"severity": "P9"}, 422, "query.severity.0"),
        ("get", "/v1/queues/product_support/cases", None, {"limit": 0}, 422, "query.limit"),
        ("get", "/v1/cases", None, {"risk": "doomed"}, 422, "query.risk"),
        ("get", "/v1/cases", None, {"sort": "mood"}, 422, "query.sort"),
        ("get", "/v1/figures", None, {"since": "yesterday"}, 422, "query.since"),
        (
            "get",
            "/v1/figures",
            None,
            {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            422,
            "query.since",
        ),
        ("get", "/v1/figures", None, {"since": "2026-01-01T00:00:00"}, 422, "query.since"),
    ],
)
async def test_bad_input_gets_problem_json_naming_the_field(
    routing: ServiceProcess,
    tap: EventTap,
    publish: Any,
    method: str,
    path: str,
    body: Any,
    params: Any,
    status: int,
    field: str,
) -> None:
    case_id = (await routed_case(tap, publish)).data["case_id"] if "{id}" in path else ""
    with client(routing, Role.SUPERVISOR) as http:
        response = http.request(method, path.format(id=case_id), json=body, params=params)
    problem = assert_problem(response, status)
    assert field in [e["field"] for e in problem.get("errors", [])]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/v1/cases/no-such-case", 404),
        ("post", "/v1/cases/no-such-case/acknowledge", 404),
        ("post", "/v1/cases/no-such-case/resume", 404),
        ("get", "/v1/queues/mars/cases", 404),
    ],
)
def test_unknown_things_are_404(routing: ServiceProcess, method: str, path: str, status: int) -> None:
    with client(routing) as http:
        assert_problem(http.request(method, path), status)


@pytest.mark.parametrize(
    "path", ["/v1/queues", "/v1/cases", "/v1/figures", "/v1/policy", "/v1/cases/x", "/v1/customers/x"]
)
def test_reading_needs_a_token(routing: ServiceProcess, path: str) -> None:
    with client(routing, None) as http:
        assert_problem(http.get(path), 401)


def test_policy_in_force(routing: ServiceProcess) -> None:
    with client(routing) as http:
        policy = http.get("/v1/policy").json()
    assert policy["version"] and policy["warning_share"] == 0.75
    assert policy["tiers"]["P2"]["first_response"] == "PT2H"


@pytest.mark.parametrize("action", ["acknowledge", "resume"])
async def test_an_overlong_idempotency_key_is_refused(
    routing: ServiceProcess, tap: EventTap, publish: Any, action: str
) -> None:
    case_id = (await routed_case(tap, publish)).data["case_id"]
    with client(routing) as http:
        response = http.post(f"/v1/cases/{case_id}/{action}", headers={"Idempotency-Key": "k" * 201})
    problem = assert_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == ["header.Idempotency-Key"]
