"""Case lifecycle: routing a complaint, and every operator action on a case, as pure transitions.

States: ``new`` (routed, no first response yet) -> ``open`` (acknowledged) <->
``waiting`` (clocks paused) -> ``resolved`` -> ``open`` again on reopen.
First-contact ownership: whoever acknowledges first owns the case to the end;
hand-offs change the queue and the assignee, never the owner. A hand-off is
complete when the receiving side acknowledges it; its time is measured between.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast, get_args

from services.routing import sla
from services.routing.assignment import choose_queue, handoff_destination
from services.routing.case import (
    ActionRecord,
    Actor,
    CaseSnapshot,
    IllegalTransitionError,
    InvalidActionError,
    Outcome,
    PendingHandoff,
    case_target,
    target_for,
    tighten_all,
)
from services.routing.escalation import resume_clocks
from services.routing.permissions import authorize
from services.routing.policy import CLOCKS, RoutingPolicy
from services.routing.severity import assess_severity
from services.routing.sla import WaitingOn
from shared.events.base import EventData
from shared.events.cases import CaseAcknowledged, CaseHandedOff, CasePaused, CaseReopened, CaseResolved, CaseRouted
from shared.events.complaints import ComplaintReceived
from shared.events.vocabulary import CustomerTier

WAITING_ON: tuple[str, ...] = get_args(WaitingOn)


def _record(action: str, actor: Actor, now: datetime, **detail: object) -> ActionRecord:
    return ActionRecord(action=action, by=actor.subject, role=actor.role, at=now, detail=detail)


def _ids(case: CaseSnapshot) -> dict[str, str]:
    return {"case_id": case.case_id, "complaint_id": case.complaint_id, "customer_id": case.customer_id}


def route(
    complaint: ComplaintReceived, customer_tier: CustomerTier, case_id: str, now: datetime, policy: RoutingPolicy
) -> Outcome:
    """Turn a complaint into a case: tier with reasons, queue, three clocks from intake."""
    assessment = assess_severity(complaint, customer_tier, policy)
    choice = choose_queue(complaint, policy)
    severity = assessment.severity
    clocks = {
        name: sla.start_clock(
            name, complaint.received_at, target_for(severity, name, choice.queue, assessment.complex, policy)
        )
        for name in CLOCKS
    }
    case = CaseSnapshot(
        case_id=case_id,
        complaint_id=complaint.complaint_id,
        customer_id=complaint.customer_id,
        severity=severity,
        severity_reasons=assessment.reasons,
        complex=assessment.complex,
        category=complaint.classification.category,
        departments=list(dict.fromkeys(complaint.classification.departments)),
        customer_tier=customer_tier,
        queue=choice.queue,
        clocks=clocks,
        received_at=complaint.received_at,
        routed_at=now,
        policy_version=policy.version,
    )
    event = CaseRouted(
        **_ids(case),
        severity=severity,
        severity_reasons=assessment.reasons,
        category=case.category,
        queue=case.queue,
        departments=case.departments,
        customer_tier=customer_tier,
        deadlines=case.deadlines(policy),
        received_at=case.received_at,
        routed_at=now,
        policy_version=policy.version,
        queue_reason=choice.reason,
        complex=assessment.complex,
    )
    record = ActionRecord(
        action="route",
        by="system",
        at=now,
        detail={"queue_reason": choice.reason, "complex_reasons": assessment.complex_reasons},
    )
    return Outcome(case=case, events=[event], record=record)


def _complete_handoff(case: CaseSnapshot, actor: Actor, now: datetime) -> tuple[CaseSnapshot, CaseHandedOff]:
    """The receiving side took the case: the hand-off is done and its time is known."""
    pending = case.pending_handoff
    if pending is None:
        raise IllegalTransitionError("no hand-off is pending")
    event = CaseHandedOff(
        **_ids(case),
        from_queue=pending.from_queue,
        to_queue=pending.to_queue,
        from_owner=pending.from_owner,
        to_owner=actor.subject,
        reason=pending.reason,
        handoff_seconds=(now - pending.requested_at).total_seconds(),
        by=pending.by,
        requested_at=pending.requested_at,
        handoff_count=case.handoff_count,
    )
    return case.model_copy(update={"pending_handoff": None, "assignee": actor.subject}), event


def _first_response(
    case: CaseSnapshot, actor: Actor, now: datetime, policy: RoutingPolicy
) -> tuple[CaseSnapshot, CaseAcknowledged]:
    """Stop the first-response clock, start the next-update window, take ownership if nobody has it."""
    clocks = dict(case.clocks)
    clocks["first_response"] = sla.meet(clocks["first_response"], now)
    clocks["next_update"] = sla.restart(clocks["next_update"], now, case_target(case, "next_update", policy))
    acked = case.model_copy(
        update={
            "status": "open",
            "clocks": clocks,
            "owner": case.owner or actor.subject,
            "assignee": case.assignee or actor.subject,
            "acknowledged_at": now,
        }
    )
    event = CaseAcknowledged(
        **_ids(case), by=actor.subject, at=now, first_response_seconds=(now - case.received_at).total_seconds()
    )
    return acked, event


def acknowledge(case: CaseSnapshot, actor: Actor, now: datetime, policy: RoutingPolicy) -> Outcome:
    """First response to the customer, or taking up a case handed off to one's queue."""
    authorize(case, actor, "acknowledge", policy)
    if case.status in ("waiting", "resolved"):
        raise IllegalTransitionError(f"a {case.status} case cannot be acknowledged")
    if case.status == "open" and case.pending_handoff is None:
        raise IllegalTransitionError("case is already acknowledged")
    events: list[EventData] = []
    if case.pending_handoff is not None:
        case, handed = _complete_handoff(case, actor, now)
        events.append(handed)
    if case.status == "new":
        case, acked = _first_response(case, actor, now, policy)
        events.append(acked)
    return Outcome(case=case, events=events, record=_record("acknowledge", actor, now))


def _require_settled(case: CaseSnapshot, action: str) -> None:
    if case.pending_handoff is not None:
        raise IllegalTransitionError(
            f"cannot {action}: hand-off to {case.pending_handoff.to_queue} is pending; acknowledge it first"
        )


def record_update(case: CaseSnapshot, actor: Actor, now: datetime, policy: RoutingPolicy, note: str) -> Outcome:
    """The customer was given an update: the next-update clock starts a new window."""
    authorize(case, actor, "update", policy)
    if case.status != "open":
        raise IllegalTransitionError(f"an update needs an acknowledged, open case (case is {case.status})")
    _require_settled(case, "record an update")
    clocks = dict(case.clocks)
    clocks["next_update"] = sla.restart(clocks["next_update"], now, case_target(case, "next_update", policy))
    return Outcome(case=case.model_copy(update={"clocks": clocks}), record=_record("update", actor, now, note=note))


def hand_off(
    case: CaseSnapshot,
    actor: Actor,
    now: datetime,
    policy: RoutingPolicy,
    to_queue: str,
    reason: str,
    to_owner: str | None = None,
) -> Outcome:
    """Pass the case to another queue (or person); the owner stays, the receiving side must take it up."""
    authorize(case, actor, "handoff", policy)
    if case.status not in ("new", "open"):
        raise IllegalTransitionError(f"a {case.status} case cannot be handed off")
    if to_queue not in policy.queues:
        raise InvalidActionError(f"unknown queue {to_queue!r}; known queues: {sorted(policy.queues)}", "to_queue")
    if not reason.strip():
        raise InvalidActionError("a hand-off needs a reason", "reason")
    destination = handoff_destination(to_queue, case.handoff_count, policy)
    if case.pending_handoff is None and destination.queue == case.queue and to_owner in (None, case.assignee):
        raise IllegalTransitionError(f"case is already in queue {case.queue}")
    events: list[EventData] = []
    if case.pending_handoff is not None:
        # Passing on a case nobody took up completes the pending hand-off: this side held it.
        case, handed = _complete_handoff(case, actor, now)
        events.append(handed)
    pending = PendingHandoff(
        from_queue=case.queue,
        from_owner=case.assignee,
        to_queue=destination.queue,
        to_owner=to_owner,
        reason=reason if destination.queue == to_queue else f"{reason} ({destination.reason})",
        requested_at=now,
        by=actor.subject,
    )
    moved = case.model_copy(
        update={
            "queue": destination.queue,
            "assignee": None,
            "pending_handoff": pending,
            "handoff_count": case.handoff_count + 1,
        }
    )
    # Entering the green channel shortens the resolution clock to its fixed target.
    moved = moved.model_copy(update={"clocks": tighten_all(moved, now, policy)})
    record = _record(
        "handoff", actor, now, to_queue=destination.queue, requested_queue=to_queue, to_owner=to_owner, reason=reason
    )
    return Outcome(case=moved, events=events, record=record)


def pause(case: CaseSnapshot, actor: Actor, now: datetime, policy: RoutingPolicy, waiting_on: str) -> Outcome:
    """The case waits on the customer or a third party: every clock holds."""
    authorize(case, actor, "pause", policy)
    if waiting_on not in WAITING_ON:
        raise InvalidActionError(f"waiting_on must be one of {list(WAITING_ON)}", "waiting_on")
    if case.status != "open":
        raise IllegalTransitionError(f"only an acknowledged, open case can wait (case is {case.status})")
    _require_settled(case, "pause")
    on = cast(WaitingOn, waiting_on)
    held = sla.Pause(waiting_on=on, started_at=now, by=actor.subject)
    paused = case.model_copy(update={"status": "waiting", "pauses": [*case.pauses, held]})
    event = CasePaused(**_ids(case), waiting_on=on, at=now, by=actor.subject)
    return Outcome(case=paused, events=[event], record=_record("pause", actor, now, waiting_on=waiting_on))


def resume(case: CaseSnapshot, actor: Actor, now: datetime, policy: RoutingPolicy) -> Outcome:
    """The customer or third party answered: the clocks run again."""
    authorize(case, actor, "resume", policy)
    if case.status != "waiting":
        raise IllegalTransitionError(f"only a waiting case can resume (case is {case.status})")
    resumed, event = resume_clocks(case, now, actor.subject)
    record = _record("resume", actor, now, paused_seconds=event.paused_seconds)
    return Outcome(case=resumed, events=[event], record=record)


def resolve(
    case: CaseSnapshot, actor: Actor, now: datetime, policy: RoutingPolicy, code: str, first_handling: bool | None
) -> Outcome:
    """Resolve with a resolution code; a case resolved before any response also counts as acknowledged.

    ``first_handling`` left out means: resolved at first handling unless it was handed off or reopened.
    """
    authorize(case, actor, "resolve", policy)
    if case.status == "resolved":
        raise IllegalTransitionError("case is already resolved")
    _require_settled(case, "resolve")
    if code not in policy.resolution_codes:
        raise InvalidActionError(
            f"unknown resolution code {code!r}; known codes: {policy.resolution_codes}", "resolution_code"
        )
    handled_more_than_once = bool(case.handoff_count or case.reopen_count)
    if first_handling is None:
        first_handling = not handled_more_than_once
    if first_handling and handled_more_than_once:
        raise IllegalTransitionError(
            f"case was handed off {case.handoff_count} and reopened {case.reopen_count} times: "
            "it cannot be resolved at first handling"
        )
    events: list[EventData] = []
    if case.status == "waiting":
        case, resumed = resume_clocks(case, now, actor.subject)
        events.append(resumed)
    if case.status == "new":
        case, acked = _first_response(case, actor, now, policy)
        events.append(acked)
    clocks = {name: sla.stop(clock) for name, clock in case.clocks.items()}
    clocks["resolution"] = sla.meet(clocks["resolution"], now)
    resolved = case.model_copy(
        update={
            "status": "resolved",
            "clocks": clocks,
            "resolved_at": now,
            "resolution_code": code,
            "first_handling": first_handling,
        }
    )
    spec = policy.queues.get(resolved.queue)
    events.append(
        CaseResolved(
            **_ids(case),
            severity=resolved.severity,
            category=resolved.category,
            queue=resolved.queue,
            customer_tier=resolved.customer_tier,
            resolution_code=code,
            first_handling=first_handling,
            sla_breached=resolved.sla_breached(),
            handoff_count=resolved.handoff_count,
            department=spec.department.value if spec and spec.department else None,
            resolved_at=now,
            resolved_by=actor.subject,
        )
    )
    record = _record("resolve", actor, now, resolution_code=code, first_handling=first_handling)
    return Outcome(case=resolved, events=events, record=record)


def reopen(case: CaseSnapshot, actor: Actor, now: datetime, policy: RoutingPolicy, reason: str) -> Outcome:
    """Reopen a resolved case: new next-update and resolution windows; the owner stays."""
    authorize(case, actor, "reopen", policy)
    if case.status != "resolved":
        raise IllegalTransitionError(f"only a resolved case can be reopened (case is {case.status})")
    if not reason.strip():
        raise InvalidActionError("reopening needs a reason", "reason")
    clocks = dict(case.clocks)
    for name in ("next_update", "resolution"):
        clocks[name] = sla.restart(clocks[name], now, case_target(case, name, policy))
    reopened = case.model_copy(
        update={
            "status": "open",
            "clocks": clocks,
            "resolved_at": None,
            "resolution_code": None,
            "first_handling": None,
            "reopen_count": case.reopen_count + 1,
        }
    )
    event = CaseReopened(**_ids(case), at=now, by=actor.subject, reason=reason)
    return Outcome(case=reopened, events=[event], record=_record("reopen", actor, now, reason=reason))
