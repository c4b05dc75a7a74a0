"""Surveys after a resolution: one-time tokens, answers, figures, and the low score -> recovery loop."""

from datetime import timedelta

import pytest

from shared.envelope import Envelope
from shared.events.cases import CaseResolved
from shared.events.compensation import CompensationIssued, Remedy
from shared.events.vocabulary import Category, CustomerTier, Role, Severity
from tests.integration.loyalty.helpers import Bus, Loyalty, new_id, now
from tests.support.events import EventTap

DIMENSIONS = {"resolution_efficiency": 5, "attitude": 4, "clarity": 4, "resolution_rate": 5, "empathy": 3}


def resolved(customer_id: str, queue: str = "product_support", case_id: str | None = None,
             category: Category = Category.PRODUCT_USAGE, sla_breached: bool = False) -> CaseResolved:
    return CaseResolved(
        case_id=case_id or new_id("case"), complaint_id=new_id("cmp"), customer_id=customer_id,
        severity=Severity.P3, category=category, queue=queue, customer_tier=CustomerTier.POTENTIAL,
        resolution_code="fixed", first_handling=True, sla_breached=sla_breached, resolved_at=now(),
        resolved_by="agent-1",
    )


async def issue(bus: Bus, tap: EventTap, customer_id: str, **kwargs: object) -> tuple[Envelope, Envelope]:
    """Resolve a case for the customer; return the resolution and the survey loyalty sent."""
    event = resolved(customer_id, **kwargs)  # type: ignore[arg-type]
    sent = await bus.publish(event, correlation_id=event.complaint_id)
    [survey] = await tap.wait_for(lambda e: e.type == "survey.issued.v1" and e.data["case_id"] == event.case_id)
    return sent, survey


def answer(loyalty: Loyalty, token: str, **scores: object):  # type: ignore[no-untyped-def]
    with loyalty.client() as client:  # customers answer with the token alone
        return client.post("/v1/surveys/answers", json={"token": token, **scores})


async def test_survey_token_is_single_use(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    async with bus.tap() as tap:
        sent, survey = await issue(bus, tap, customer_id)
        token = survey.data["token"]
        first = answer(loyalty, token, csat=5, nps=9, ces=2, dimensions=DIMENSIONS, comment="很好 great")
        second = answer(loyalty, token, csat=1)
        [answered] = await tap.wait_for(lambda e: e.type == "survey.answered.v1"
                                        and e.data["survey_id"] == survey.data["survey_id"])
    assert survey.correlationid == sent.data["complaint_id"] and survey.causationid == sent.id
    assert survey.data["expires_at"] > now().isoformat()
    assert first.status_code == 201, first.text
    assert first.json()["low_score"] is False
    assert first.json()["satisfaction"] == pytest.approx(0.29 * 5 + 0.22 * 4 + 0.18 * 4 + 0.16 * 5 + 0.15 * 3)
    assert second.status_code == 409
    assert second.json()["type"].endswith("/survey-answered")
    assert answered.data["csat"] == 5 and answered.data["comment"] == "很好 great"
    assert answered.data["queue"] == "product_support" and answered.data["category"] == "product_usage"
    assert answered.correlationid == sent.data["complaint_id"]
    with loyalty.client(Role.AGENT) as client:
        status = client.get(f"/v1/surveys/{survey.data['survey_id']}").json()
    assert status["answered_at"] is not None and "token" not in status and "token_digest" not in status


async def test_concurrent_answers_with_one_token_count_once(loyalty: Loyalty, bus: Bus) -> None:
    import asyncio

    import httpx

    async with bus.tap() as tap:
        _, survey = await issue(bus, tap, new_id("cust"))
    async with httpx.AsyncClient(base_url=loyalty.stack.url("loyalty")) as client:
        responses = await asyncio.gather(*[
            client.post("/v1/surveys/answers", json={"token": survey.data["token"], "csat": 4}) for _ in range(8)
        ])
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7


async def test_expired_survey_is_gone(loyalty: Loyalty, bus: Bus) -> None:
    async with bus.tap() as tap:
        _, survey = await issue(bus, tap, new_id("cust"))
    await loyalty.sql("UPDATE surveys SET expires_at = :t WHERE survey_id = :s",
                      t=now() - timedelta(seconds=1), s=survey.data["survey_id"])
    response = answer(loyalty, survey.data["token"], csat=4)
    assert response.status_code == 410
    assert response.json()["type"].endswith("/survey-expired")


@pytest.mark.parametrize(
    ("scores", "field"),
    [
        ({"csat": 6}, "body.csat"),
        ({"csat": 0}, "body.csat"),
        ({"nps": 11}, "body.nps"),
        ({"nps": -1}, "body.nps"),
        ({"ces": 8}, "body.ces"),
        ({"csat": 4, "dimensions": {"speed": 3}}, "body.dimensions.speed.[key]"),
        ({"csat": 4, "dimensions": {"empathy": 9}}, "body.dimensions.empathy"),
        ({}, "body.csat"),  # an answer needs at least one score
        ({"csat": 4, "comment": "x" * 2001}, "body.comment"),
    ],
)
async def test_answers_out_of_range_are_refused(loyalty: Loyalty, bus: Bus, scores: dict, field: str) -> None:
    async with bus.tap() as tap:
        _, survey = await issue(bus, tap, new_id("cust"))
    response = answer(loyalty, survey.data["token"], **scores)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]
    assert answer(loyalty, survey.data["token"], csat=4).status_code == 201  # a refused answer used nothing up


def test_unknown_token_is_404(loyalty: Loyalty) -> None:
    response = answer(loyalty, "x" * 43, csat=4)
    assert response.status_code == 404
    assert answer(loyalty, "short", csat=4).status_code == 422


async def test_figures_over_known_answers_per_group(loyalty: Loyalty, bus: Bus) -> None:
    queue = new_id("queue")
    since = now()
    async with bus.tap() as tap:
        surveys = [(await issue(bus, tap, new_id("cust"), queue=queue))[1] for _ in range(4)]
    for survey, (csat, nps, ces) in zip(surveys, [(5, 10, 2), (4, 9, 3), (3, 7, 4), (1, 2, 7)], strict=True):
        assert answer(loyalty, survey.data["token"], csat=csat, nps=nps, ces=ces).status_code == 201
    with loyalty.client(Role.AGENT) as client:
        report = client.get("/v1/satisfaction", params={"group_by": "queue", "since": since.isoformat(),
                                                        "until": (now() + timedelta(seconds=1)).isoformat()}).json()
    assert report["groups"][queue] == {"responses": 4, "csat_percent": 50.0, "nps": 25.0, "ces_average": 4.0,
                                       "satisfaction": 3.25}
    assert report["overall"]["responses"] >= 4


def test_figures_bad_input(loyalty: Loyalty) -> None:
    with loyalty.client(Role.AGENT) as client:
        backwards = client.get("/v1/satisfaction", params={"since": "2026-02-01T00:00:00Z",
                                                           "until": "2026-01-01T00:00:00Z"})
        naive = client.get("/v1/satisfaction", params={"since": "2026-01-01T00:00:00"})
        bad_group = client.get("/v1/satisfaction", params={"group_by": "colour"})
    with loyalty.client() as anonymous:
        unauthenticated = anonymous.get("/v1/satisfaction")
    assert (backwards.status_code, naive.status_code, bad_group.status_code) == (422, 422, 422)
    assert unauthenticated.status_code == 401
    with loyalty.client(Role.AGENT) as client:
        assert client.get(f"/v1/surveys/{new_id('nosuch')}").status_code == 404


async def test_low_score_recovery_and_follow_up_survey(loyalty: Loyalty, bus: Bus) -> None:
    customer_id = new_id("cust")
    async with bus.tap() as tap:
        _, survey = await issue(bus, tap, customer_id)
        low = answer(loyalty, survey.data["token"], csat=2, nps=3)
        [answered] = await tap.wait_for(lambda e: e.type == "survey.answered.v1"
                                        and e.data["customer_id"] == customer_id)
        [churn] = await tap.wait_for(lambda e: e.type == "care.churn_risk.v1" and e.data["customer_id"] == customer_id)
        # Recovery consumes survey.answered.v1 with low_score set and issues a goodwill remedy for the case.
        await bus.publish(CompensationIssued(
            compensation_id=new_id("comp"), customer_id=customer_id, case_id=survey.data["case_id"],
            reason="low_survey", remedy=Remedy(option_id="g", kind="points", points=500), issued_at=now(),
        ), correlation_id=answered.correlationid)
        [follow_up] = await tap.wait_for(lambda e: e.type == "survey.issued.v1"
                                         and e.data["follow_up_of"] == survey.data["survey_id"])
        since = now()
        better = answer(loyalty, follow_up.data["token"], csat=5, nps=9)
    assert low.status_code == 201 and low.json()["low_score"] is True
    assert answered.data["low_score"] is True
    assert churn.data["signals"] == ["low_survey_score"]
    assert follow_up.data["case_id"] == survey.data["case_id"]
    assert follow_up.correlationid == answered.correlationid
    assert better.status_code == 201 and better.json()["follow_up_of"] == survey.data["survey_id"]
    with loyalty.client(Role.AGENT) as client:
        report = client.get("/v1/satisfaction", params={"since": since.isoformat(),
                                                        "until": (now() + timedelta(seconds=1)).isoformat()}).json()
    assert report["recovery"] == {"follow_ups_answered": 1, "recovered": 1, "recovered_share": 100.0}
    assert report["overall"]["responses"] == 0  # follow-ups are reported apart from first surveys
    view = loyalty.view(customer_id).json()
    assert view["balance"] == 500
    assert view["satisfaction"] == {"responses": 2, "average": 3.5, "level": "neutral", "repurchase_rate": None}
