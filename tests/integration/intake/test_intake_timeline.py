"""Intake follows its complaints downstream: events of routing, recovery and loyalty fill the status timeline."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.envelope import new_event, to_kafka
from shared.events.cases import CaseAcknowledged, CaseResolved, CaseRouted, Deadlines
from shared.events.compensation import CompensationRejected
from shared.events.vocabulary import Category, Severity
from tests.integration.intake.conftest import Intake
from tests.integration.intake.helpers import fresh, publish, unique


def _view(intake: Intake, complaint_id: str, until: Any) -> dict[str, Any]:
    """The complaint once ``until(view)`` holds (events travel through the broker first)."""
    with intake.operator() as client:
        for _ in range(300):
            view = client.get(f"/v1/complaints/{complaint_id}").json()
            if until(view):
                return view  # type: ignore[no-any-return]
            time.sleep(0.1)
    raise AssertionError(f"complaint never reached the expected state: {view}")


def _submit(intake: Intake) -> dict[str, Any]:
    response = intake.channels.post("web", fresh("web_en"))
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def _routed(complaint: dict[str, Any], case_id: str, at: datetime) -> CaseRouted:
    return CaseRouted(
        case_id=case_id,
        complaint_id=complaint["complaint_id"],
        customer_id=complaint["customer_id"],
        severity=Severity.P2,
        category=Category.PRODUCT_USAGE,
        queue="product_support",
        deadlines=Deadlines(),
        received_at=at,
        routed_at=at,
    )


def _resolved(complaint: dict[str, Any], case_id: str, at: datetime) -> CaseResolved:
    return CaseResolved(
        case_id=case_id,
        complaint_id=complaint["complaint_id"],
        customer_id=complaint["customer_id"],
        severity=Severity.P2,
        category=Category.PRODUCT_USAGE,
        queue="product_support",
        resolution_code="repaired",
        first_handling=True,
        resolved_at=at,
        resolved_by="agent-7",
    )


async def test_downstream_events_build_the_status_timeline(intake: Intake, broker_address: str) -> None:
    complaint = _submit(intake)
    cid, case_id, now = complaint["complaint_id"], unique("case"), datetime.now(UTC)
    await publish(broker_address, _routed(complaint, case_id, now), cid)
    await publish(
        broker_address,
        CaseAcknowledged(
            case_id=case_id,
            complaint_id=cid,
            customer_id=complaint["customer_id"],
            by="agent-7",
            at=now,
            first_response_seconds=42.0,
        ),
        cid,
    )
    await publish(broker_address, _resolved(complaint, case_id, now), cid)
    view = _view(intake, cid, lambda v: v["status"] == "resolved")
    assert [e["event_type"] for e in view["timeline"]] == [
        "complaint.received.v1",
        "case.routed.v1",
        "case.acknowledged.v1",
        "case.resolved.v1",
    ]
    assert [e["status"] for e in view["timeline"]] == ["received", "routed", "in_progress", "resolved"]
    assert view["case_id"] == case_id
    assert view["timeline"][1]["detail"]["queue"] == "product_support"


async def test_an_event_that_arrives_late_does_not_turn_the_status_back(intake: Intake, broker_address: str) -> None:
    complaint = _submit(intake)
    cid, case_id = complaint["complaint_id"], unique("case")
    earlier = datetime.now(UTC)
    await publish(broker_address, _resolved(complaint, case_id, earlier), cid, at=earlier)
    _view(intake, cid, lambda v: v["status"] == "resolved")
    # Made before the resolution, delivered after it (another topic, a slow partition).
    await publish(broker_address, _routed(complaint, case_id, earlier), cid, at=earlier - timedelta(seconds=5))
    view = _view(intake, cid, lambda v: len(v["timeline"]) == 3)
    assert view["status"] == "resolved"


async def test_compensation_events_join_the_timeline_by_correlation(intake: Intake, broker_address: str) -> None:
    complaint = _submit(intake)
    cid = complaint["complaint_id"]
    rejected = CompensationRejected(
        compensation_id=unique("comp"),
        customer_id=complaint["customer_id"],
        case_id=unique("case"),
        reason="manual",
        rejected_by="manager-2",
    )
    await publish(broker_address, rejected, cid, source="/redress/recovery")
    view = _view(intake, cid, lambda v: len(v["timeline"]) == 2)
    assert view["timeline"][1]["event_type"] == "compensation.rejected.v1"
    assert view["timeline"][1]["detail"]["rejected_by"] == "manager-2"
    assert view["status"] == "received"  # compensation does not move the lifecycle


async def test_a_redelivered_event_is_on_the_timeline_once(intake: Intake, broker_address: str) -> None:
    complaint = _submit(intake)
    cid, case_id = complaint["complaint_id"], unique("case")
    event = _routed(complaint, case_id, datetime.now(UTC))
    envelope = new_event(event, source="/redress/routing", subject=cid, correlation_id=cid)
    producer = AIOKafkaProducer(bootstrap_servers=broker_address)
    await producer.start()
    try:
        for _ in range(2):
            key, value, headers = to_kafka(envelope)
            await producer.send_and_wait(str(event.topic), value, key=key, headers=headers)
    finally:
        await producer.stop()
    await publish(broker_address, _resolved(complaint, case_id, datetime.now(UTC) + timedelta(seconds=1)), cid)
    view = _view(intake, cid, lambda v: v["status"] == "resolved")
    assert [e["event_type"] for e in view["timeline"]].count("case.routed.v1") == 1
