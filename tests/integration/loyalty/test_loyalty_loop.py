"""The loop across the four running services: complaint -> resolution -> survey -> low score ->
recovery's goodwill -> follow-up survey -> recovered share."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from shared.events.vocabulary import Role
from tests.support.complaints import submit, web_complaint
from tests.support.events import EventTap
from tests.support.stack import Stack

pytestmark = pytest.mark.slow


async def _run_timer_now(database_url: str, kind: str, key: str) -> None:
    """Let time pass for one of loyalty's durable timers."""
    engine = create_async_engine(database_url, connect_args={"server_settings": {"search_path": "loyalty"}})
    try:
        async with engine.begin() as conn:
            result = await conn.execute(
                sa.text("UPDATE timers SET due_at = now() - interval '1 second' WHERE kind = :k AND key = :key"),
                {"k": kind, "key": key},
            )
            assert result.rowcount == 1
    finally:
        await engine.dispose()


async def test_low_score_loop_across_services(stack: Stack, broker_address: str) -> None:
    async with EventTap(broker_address, from_beginning=False) as tap:
        accepted = submit(stack, web_complaint())
        assert accepted.status_code == 202, accepted.text
        complaint_id, customer_id = accepted.json()["complaint_id"], accepted.json()["customer_id"]

        def chain(event_type: str):  # type: ignore[no-untyped-def]
            return lambda e: e.type == event_type and e.correlationid == complaint_id

        [routed] = await tap.wait_for(chain("case.routed.v1"))
        case_id = routed.data["case_id"]
        with stack.client("routing", Role.AGENT) as routing:
            assert routing.post(f"/v1/cases/{case_id}/resolve", json={"resolution_code": "fixed"}).status_code == 200
        [survey] = await tap.wait_for(chain("survey.issued.v1"))
        with stack.client("loyalty") as loyalty:
            low = loyalty.post("/v1/surveys/answers", json={"token": survey.data["token"], "csat": 1, "nps": 2})
        assert low.status_code == 201 and low.json()["low_score"] is True

        [goodwill] = await tap.wait_for(
            lambda e: e.type == "compensation.issued.v1" and e.data["reason"] == "low_survey"
            and e.data["customer_id"] == customer_id
        )
        await tap.wait_for(chain("care.churn_risk.v1"))
        # The follow-up survey waits a day after the recovery; let that day pass.
        await _run_timer_now(stack.env["DATABASE_URL"], "loyalty.recovery_survey", goodwill.data["compensation_id"])
        [follow_up] = await tap.wait_for(
            lambda e: e.type == "survey.issued.v1" and e.data.get("follow_up_of") == survey.data["survey_id"]
        )
        with stack.client("loyalty") as loyalty:
            since = follow_up.time - timedelta(seconds=1)
            better = loyalty.post("/v1/surveys/answers", json={"token": follow_up.data["token"], "csat": 5, "nps": 9})
        assert better.status_code == 201

    assert goodwill.data["case_id"] == case_id
    assert follow_up.correlationid == complaint_id  # one correlation id from the complaint to the follow-up
    with stack.client("loyalty", Role.AGENT) as loyalty:
        report = loyalty.get("/v1/satisfaction", params={"since": since.isoformat()}).json()
    assert report["recovery"]["follow_ups_answered"] >= 1
    assert report["recovery"]["recovered"] >= 1
