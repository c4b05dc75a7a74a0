"""What `redress watch` prints and which events its filters let through."""

from datetime import UTC, datetime

from shared.cli.common import Palette
from shared.cli.filters import EventFilter
from shared.cli.render import dead_letter_line, event_line, facts
from shared.envelope import Envelope, new_event, to_kafka
from shared.events.cases import CaseAcknowledged, CaseEscalated, CaseRouted, Deadlines
from shared.events.compensation import CompensationIssued, Remedy
from shared.events.complaints import Classification, ComplaintReceived
from shared.events.vocabulary import Category, Channel, CustomerTier, Severity, UrgencyCue
from shared.stream import StreamItem

NOW = datetime.now(UTC)
CID = "5b1f0a3e-1111-4222-8333-444455556666"
OTHER = "9c2e0b4f-1111-4222-8333-444455556666"


def _event(data, correlation: str = CID, source: str = "routing") -> Envelope:  # type: ignore[no-untyped-def]
    return new_event(data, source=f"/redress/{source}", subject=getattr(data, "case_id", correlation),
                     correlation_id=correlation)


def complaint(correlation: str = CID, customer: str = "cust-1") -> Envelope:
    data = ComplaintReceived(
        complaint_id=correlation, customer_id=customer, channel=Channel.SOCIAL, received_at=NOW,
        text="Call me at +86 138 0013 8000, my account was emptied!",
        classification=Classification(category=Category.ACCOUNT_ANOMALY, urgency_cues=[UrgencyCue.MONEY_LOST]),
    )
    return _event(data, correlation, "intake")


def routed(correlation: str = CID, case: str = "case-1", severity: Severity = Severity.P1) -> Envelope:
    data = CaseRouted(
        case_id=case, complaint_id=correlation, customer_id="cust-1", severity=severity,
        category=Category.ACCOUNT_ANOMALY, queue="accounts_security", customer_tier=CustomerTier.HIGH_VALUE,
        deadlines=Deadlines(first_response_due=NOW), received_at=NOW, routed_at=NOW,
    )
    return _event(data, correlation)


def acknowledged(correlation: str = CID, case: str = "case-1") -> Envelope:
    data = CaseAcknowledged(case_id=case, complaint_id=correlation, customer_id="cust-1", by="agent-7", at=NOW,
                            first_response_seconds=192)
    return _event(data, correlation)


def test_a_line_has_time_service_type_customer_complaint_and_facts() -> None:
    line = event_line(routed(), Palette(False))
    parts = line.split()
    assert parts[1:5] == ["routing", "case.routed.v1", "cust-1", CID[:8]]
    assert "P1 -> accounts_security tier high_value, first response by" in line
    assert "first response after 3m12s" in event_line(acknowledged(), Palette(False))


def test_complaint_text_is_masked_and_cut() -> None:
    text = facts(complaint())
    assert text.startswith("social account_anomaly cues money_lost")
    assert "138 0013 8000" not in text and "***00" in text


def test_compensation_and_escalation_facts() -> None:
    issued = CompensationIssued(
        compensation_id="comp-1", customer_id="cust-1", case_id="case-1", reason="case_resolved",
        remedy=Remedy(option_id="credit", kind="account_credit", amount_minor=20000), issued_at=NOW,
        customer_tier=CustomerTier.HIGH_VALUE,
    )
    assert facts(_event(issued, source="recovery")) == "account_credit 200.00 CNY (case_resolved, high_value)"
    climbed = CaseEscalated(case_id="case-1", complaint_id=CID, customer_id="cust-1", from_level="agent",
                            to_level="supervisor", from_severity=Severity.P2, to_severity=Severity.P1,
                            reason="first_response deadline passed")
    assert facts(_event(climbed)) == "agent -> supervisor, P2 -> P1: first_response deadline passed"


def test_colours_only_when_asked() -> None:
    assert "\033[" in event_line(routed(), Palette(True))
    assert "\033[" not in event_line(routed(), Palette(False))


def test_unknown_types_get_a_generic_summary() -> None:
    env = routed().model_copy(update={"type": "case.something_new.v2", "data": {"case_id": "c", "note": "hi"}})
    assert facts(env) == "case_id=c note=hi"


def _seen(flt: EventFilter, events: list[Envelope]) -> list[Envelope]:
    shown = []
    for env in events:
        flt.observe(env)
        if flt.matches(env):
            shown.append(env)
    return shown


def test_severity_filter_learns_the_complaints_tier() -> None:
    events = [routed(CID, severity=Severity.P1), acknowledged(CID), routed(OTHER, "case-2", Severity.P3),
              acknowledged(OTHER, "case-2")]
    shown = _seen(EventFilter(severities={"P1"}), events)
    assert [(e.type, e.correlationid) for e in shown] == [("case.routed.v1", CID), ("case.acknowledged.v1", CID)]


def test_follow_by_case_id_shows_the_whole_complaint() -> None:
    events = [routed(OTHER, "case-2"), routed(CID, "case-1"), acknowledged(CID), acknowledged(OTHER, "case-2")]
    shown = _seen(EventFilter(follow="case-1"), events)
    assert {e.correlationid for e in shown} == {CID} and len(shown) == 2


def test_type_glob_customer_and_complaint_prefix() -> None:
    events = [complaint(CID, "cust-1"), routed(CID), complaint(OTHER, "cust-2")]
    assert [e.type for e in _seen(EventFilter(types=["case.*"]), events)] == ["case.routed.v1"]
    assert len(_seen(EventFilter(customers={"cust-2"}), events)) == 1
    assert len(_seen(EventFilter(complaints=[CID[:8]]), events)) == 2
    assert _seen(EventFilter(complaints=[CID[:4]]), events) == []  # too short to be a prefix


def test_dead_letter_line_says_where_from_and_why() -> None:
    key, value, headers = to_kafka(routed())
    dlq = {k: v.decode() for k, v in headers}
    dlq.update(dlq_error="boom: bad data", dlq_consumer="redress-recovery", dlq_source_topic="redress.cases.v1",
               dlq_source_partition="2", dlq_source_offset="41")
    item = StreamItem("redress.dlq.v1", 1, 7, routed(), None, dlq, key.decode(), value)
    line = dead_letter_line(item, Palette(False))
    assert "DLQ" in line and "1:7 from redress.cases.v1[2]@41 by redress-recovery" in line and "boom" in line
