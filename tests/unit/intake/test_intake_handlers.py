"""Which downstream events intake follows, the status each means, and what the timeline keeps of them."""

from __future__ import annotations

from datetime import UTC, datetime

from services.intake.handlers import STATUS_OF, _detail, followed_event_types, make_handlers
from shared.events import EVENT_TYPES
from shared.events.cases import CaseAcknowledged, CaseHandedOff


def test_every_case_compensation_and_survey_event_is_followed() -> None:
    followed = set(followed_event_types())
    expected = {t for t in EVENT_TYPES if t.startswith(("case.", "compensation.", "survey."))}
    assert expected | {"loyalty.points_changed.v1"} == followed
    assert not {t for t in followed if t.startswith(("complaint.", "incident.", "care."))}
    assert set(make_handlers()) == followed


def test_lifecycle_events_have_a_status_and_exist() -> None:
    assert set(STATUS_OF) <= set(EVENT_TYPES)
    assert STATUS_OF["case.resolved.v1"] == "resolved"
    assert STATUS_OF["case.routed.v1"] == "routed"


def test_timeline_detail_drops_known_ids_and_cuts_long_text() -> None:
    event = CaseHandedOff(
        case_id="case-1",
        complaint_id="c-1",
        customer_id="cust-1",
        from_queue="billing",
        to_queue="logistics",
        reason="x" * 500,
        handoff_seconds=12.5,
        by="agent-2",
    )
    detail = _detail(event)
    assert "complaint_id" not in detail and "customer_id" not in detail
    assert detail["case_id"] == "case-1" and detail["to_queue"] == "logistics"
    assert len(detail["reason"]) == 301 and detail["reason"].endswith("…")


def test_detail_is_json_ready() -> None:
    at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    detail = _detail(
        CaseAcknowledged(case_id="k", complaint_id="c", customer_id="u", by="a", at=at, first_response_seconds=3.0)
    )
    assert detail["at"] == "2026-11-23T12:00:00Z"
