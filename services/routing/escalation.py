"""Escalation: the ladder (agent, supervisor, manager), SLA warnings and breaches, follow-ups.

On a breach the case climbs one level and its tier rises; its running clocks are
shortened to the new tier's targets (never lengthened), and the breached clock
gets a fresh window so a case nobody touches keeps climbing until the top.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from services.routing import sla
from services.routing.case import (
    CUSTOMER,
    SYSTEM,
    ActionRecord,
    Actor,
    CaseSnapshot,
    IllegalTransitionError,
    Outcome,
    case_target,
    tighten_all,
)
from services.routing.permissions import authorize
from services.routing.policy import SEVERITY_ORDER, RoutingPolicy, severity_index
from services.routing.sla import TimerSpec
from shared.events.base import EventData
from shared.events.cases import CaseEscalated, CaseResumed, CaseSlaBreached, CaseSlaWarning
from shared.events.vocabulary import Role, Severity


class EscalationStep(BaseModel):
    """From where to where a case climbs."""

    model_config = ConfigDict(frozen=True)

    from_level: Role
    to_level: Role
    from_severity: Severity
    to_severity: Severity


def raise_severity(severity: Severity, steps: int) -> Severity:
    """``steps`` tiers more severe, never beyond P1."""
    return SEVERITY_ORDER[max(0, severity_index(severity) - steps)]


def next_step(level: Role, severity: Severity, policy: RoutingPolicy) -> EscalationStep | None:
    """The next rung for a case, or None when it is already at the top level and tier."""
    levels = policy.ladder.levels
    position = levels.index(level) if level in levels else 0
    to_level = levels[min(position + 1, len(levels) - 1)]
    to_severity = raise_severity(severity, policy.ladder.severity_steps)
    if to_level == level and to_severity == severity:
        return None
    return EscalationStep(from_level=level, to_level=to_level, from_severity=severity, to_severity=to_severity)


def at_top(level: Role, policy: RoutingPolicy) -> bool:
    """The case has reached the last level of the ladder."""
    return level == policy.ladder.levels[-1]


def climb(
    case: CaseSnapshot, now: datetime, policy: RoutingPolicy, reason: str, by: str | None = None
) -> tuple[CaseSnapshot, CaseEscalated | None]:
    """Move a case one rung up and tighten its running clocks to the new tier's targets."""
    step = next_step(case.level, case.severity, policy)
    if step is None:
        return case, None
    raised = case.model_copy(
        update={"level": step.to_level, "severity": step.to_severity, "escalations": case.escalations + 1}
    )
    raised = raised.model_copy(update={"clocks": tighten_all(raised, now, policy)})
    event = CaseEscalated(
        case_id=case.case_id,
        complaint_id=case.complaint_id,
        customer_id=case.customer_id,
        from_level=step.from_level.value,
        to_level=step.to_level.value,
        from_severity=step.from_severity,
        to_severity=step.to_severity,
        reason=reason,
        by=by,
    )
    return raised, event


def _warn(case: CaseSnapshot, timer: TimerSpec, now: datetime) -> Outcome:
    clock = case.clocks[timer.clock].model_copy(update={"warned": True})
    warned = case.model_copy(update={"clocks": {**case.clocks, timer.clock: clock}})
    event = CaseSlaWarning(
        case_id=case.case_id,
        complaint_id=case.complaint_id,
        customer_id=case.customer_id,
        clock=timer.clock,
        due_at=timer.due_at,
        severity=case.severity,
    )
    detail = {"clock": timer.clock, "due_at": timer.due_at}
    record = ActionRecord(action="sla_warning", by=SYSTEM, at=now, detail=detail)
    return Outcome(case=warned, events=[event], record=record)


def _breach(case: CaseSnapshot, timer: TimerSpec, now: datetime, policy: RoutingPolicy) -> Outcome:
    old = case.clocks[timer.clock]
    clock = old.model_copy(update={"breached": True, "breaches": old.breaches + 1})
    breached = case.model_copy(update={"clocks": {**case.clocks, timer.clock: clock}})
    events: list[EventData] = [
        CaseSlaBreached(
            case_id=case.case_id,
            complaint_id=case.complaint_id,
            customer_id=case.customer_id,
            clock=timer.clock,
            due_at=timer.due_at,
            severity=case.severity,
            customer_tier=case.customer_tier,
        )
    ]
    raised, escalated = climb(breached, now, policy, f"{timer.clock} deadline passed")
    if escalated is not None:
        events.append(escalated)
        # The next rung gets its own window on the breached clock, so a case left alone keeps climbing.
        if next_step(raised.level, raised.severity, policy) is not None:
            window = sla.restart(raised.clocks[timer.clock], now, case_target(raised, timer.clock, policy))
            raised = raised.model_copy(update={"clocks": {**raised.clocks, timer.clock: window}})
    detail = {"clock": timer.clock, "due_at": timer.due_at, "level": raised.level.value, "severity": raised.severity}
    record = ActionRecord(action="sla_breach", by=SYSTEM, at=now, detail=detail)
    return Outcome(case=raised, events=events, record=record)


def on_timer(case: CaseSnapshot, timer: TimerSpec, now: datetime, policy: RoutingPolicy) -> Outcome | None:
    """Act on a due warning or breach; None when the timer is stale (paused, met, restarted) or early."""
    if case.status == "resolved" or now < timer.due_at or timer.clock not in case.clocks:
        return None
    clock = case.clocks[timer.clock]
    if not sla.is_current(timer, clock, policy.warning_share, case.calendar(policy), case.pauses):
        return None
    return _warn(case, timer, now) if timer.kind == "warning" else _breach(case, timer, now, policy)


def escalate(case: CaseSnapshot, actor: Actor, now: datetime, policy: RoutingPolicy, reason: str) -> Outcome:
    """Manual escalation by an operator."""
    authorize(case, actor, "escalate", policy)
    if case.status == "resolved":
        raise IllegalTransitionError("a resolved case cannot be escalated; reopen it first")
    raised, event = climb(case, now, policy, reason, by=actor.subject)
    if event is None:
        raise IllegalTransitionError(
            f"case is already at the top of the ladder ({case.level.value}, {case.severity.value})"
        )
    detail = {"reason": reason, "level": raised.level.value, "severity": raised.severity}
    record = ActionRecord(action="escalate", by=actor.subject, role=actor.role, at=now, detail=detail)
    return Outcome(case=raised, events=[event], record=record)


def follow_up(case: CaseSnapshot, now: datetime, policy: RoutingPolicy, count: int = 1) -> Outcome:
    """The customer wrote again: an answer resumes a case waiting on them, otherwise it escalates at once."""
    detail: dict[str, object] = {"follow_up_count": count}
    case = case.model_copy(update={"follow_ups": case.follow_ups + 1})
    waiting_on_customer = case.status == "waiting" and case.pauses and case.pauses[-1].waiting_on == "customer"
    if waiting_on_customer:
        resumed, event = resume_clocks(case, now, CUSTOMER)
        detail["effect"] = "resumed: the customer answered"
        record = ActionRecord(action="follow_up", by=CUSTOMER, at=now, detail=detail)
        return Outcome(case=resumed, events=[event], record=record)
    events: list[EventData] = []
    if case.status != "resolved":
        case, escalated = climb(case, now, policy, f"customer followed up ({count})", by=CUSTOMER)
        events += [escalated] if escalated else []
    detail["effect"] = "escalated" if events else "recorded"
    record = ActionRecord(action="follow_up", by=CUSTOMER, at=now, detail=detail)
    return Outcome(case=case, events=events, record=record)


def resume_clocks(case: CaseSnapshot, now: datetime, by: str) -> tuple[CaseSnapshot, CaseResumed]:
    """Close the open pause: the clocks run again, their deadlines shifted by the paused time."""
    pause = case.pauses[-1]
    closed = pause.model_copy(update={"ended_at": now})
    resumed = case.model_copy(update={"status": "open", "pauses": [*case.pauses[:-1], closed]})
    event = CaseResumed(
        case_id=case.case_id,
        complaint_id=case.complaint_id,
        customer_id=case.customer_id,
        at=now,
        paused_seconds=(now - pause.started_at).total_seconds(),
        by=by,
    )
    return resumed, event
