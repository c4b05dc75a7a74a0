"""Replaying recorded complaints and cases through a routing and a recovery policy (pure: no I/O).

From the events, each complaint keeps what really happened: when it arrived, the customer's tier,
when the first response and the resolution came, the pauses, the resolution code and whether the
first handling resolved it, the survey answers. The replay then asks the policies what they would
have done: the tier and SLA targets (``services.routing.lifecycle.route``), the breaches and
escalations those real handling times would have caused (``services.routing.escalation.on_timer``,
clock by clock, in time order), and the compensation each trigger would have earned
(``services.recovery.decision.decide``, in time order per customer, with caps and budgets).

Approximations, said plainly: the queue is the one the policy chooses at routing (hand-offs are not
replayed), the next-update clock is not replayed (updates are not events), and a case still open
is measured up to ``as_of``. The services' policy modules are imported lazily: the CLI is an
operator tool, not a service.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.envelope import Envelope, MalformedEvent
from shared.events.cases import (
    CaseAcknowledged,
    CasePaused,
    CaseResolved,
    CaseResumed,
    CaseRouted,
    CaseSlaBreached,
)
from shared.events.complaints import ComplaintReceived
from shared.events.loyalty import SurveyAnswered, TierChanged
from shared.events.vocabulary import CustomerTier, Severity

if TYPE_CHECKING:
    from services.recovery.policy import RecoveryPolicy
    from services.routing.policy import RoutingPolicy

REPLAYED_CLOCKS = ("first_response", "resolution")
MAX_STEPS = 50  # the ladder is finite; this only guards against a policy that never settles


@dataclass
class RecordedCase:
    """What really happened to one complaint."""

    correlation_id: str
    complaint: ComplaintReceived
    customer_tier: CustomerTier
    case_id: str | None = None
    routed_at: datetime | None = None
    department: str | None = None
    acknowledged_at: datetime | None = None
    resolved: CaseResolved | None = None
    pauses: list[tuple[str, datetime, datetime | None]] = field(default_factory=list)
    surveys: list[SurveyAnswered] = field(default_factory=list)

    @property
    def customer_id(self) -> str:
        """The customer."""
        return self.complaint.customer_id


@dataclass
class Recorded:
    """The replayable set and what had to be left out."""

    cases: list[RecordedCase]
    as_of: datetime
    skipped_without_complaint: int = 0
    malformed: int = 0


@dataclass
class CaseResult:
    """One complaint under one pair of policies."""

    correlation_id: str
    customer_tier: str
    severity: str
    final_severity: str
    breaches: list[tuple[str, datetime, str]]  # clock, when, severity then
    escalations: int
    compensation_minor: int = 0


@dataclass
class TierMoney:
    """Compensation of one customer tier."""

    count: int = 0
    total_minor: int = 0
    approvals: int = 0


@dataclass
class PolicyOutcome:
    """What a pair of policies would have done with the recorded set."""

    routing_version: str
    recovery_version: str
    currency: str
    cases_per_tier: dict[str, int]
    targets: dict[str, dict[str, float]]
    breaches: dict[str, int]
    escalations: int
    cases_escalated: int
    compensation: dict[str, TierMoney]
    cases: dict[str, CaseResult]


# --- reading the record ---------------------------------------------------------------------


def _payload(env: Envelope) -> Any:
    try:
        return env.payload()
    except MalformedEvent:
        return None


def collect(envelopes: list[Envelope], as_of: datetime | None = None) -> Recorded:
    """Group the events by complaint; ``as_of`` defaults to the latest event time."""
    by_complaint: dict[str, dict[str, Any]] = defaultdict(lambda: {"pauses": [], "surveys": []})
    tiers: dict[str, list[tuple[datetime, CustomerTier]]] = defaultdict(list)
    malformed = 0
    for env in sorted(envelopes, key=lambda e: e.time):
        data = _payload(env)
        if data is None:
            malformed += 1
            continue
        _record(by_complaint[env.correlationid], tiers, data)
    cases, skipped = [], 0
    for correlation_id, facts in by_complaint.items():
        complaint = facts.get("complaint")
        if complaint is None:
            skipped += 1 if facts.get("routed") else 0
            continue
        cases.append(_recorded_case(correlation_id, complaint, facts, tiers))
    latest = max((e.time for e in envelopes), default=None)
    return Recorded(cases, as_of or latest or datetime.now().astimezone(), skipped, malformed)


def _record(facts: dict[str, Any], tiers: dict[str, list[tuple[datetime, CustomerTier]]], data: Any) -> None:
    if isinstance(data, ComplaintReceived):
        facts["complaint"] = data
    elif isinstance(data, CaseRouted):
        facts["routed"] = data
    elif isinstance(data, CaseAcknowledged):
        facts.setdefault("acknowledged_at", data.at)
    elif isinstance(data, CasePaused):
        facts["pauses"].append([data.waiting_on, data.at, None])
    elif isinstance(data, CaseResumed) and facts["pauses"] and facts["pauses"][-1][2] is None:
        facts["pauses"][-1][2] = data.at
    elif isinstance(data, CaseResolved):
        facts.setdefault("resolved", data)  # the first resolution; reopened cases are not replayed twice
    elif isinstance(data, SurveyAnswered):
        facts["surveys"].append(data)
    elif isinstance(data, TierChanged):
        tiers[data.customer_id].append((data.changed_at, data.to_tier))


def _tier_at(tiers: list[tuple[datetime, CustomerTier]], moment: datetime) -> CustomerTier:
    known = [tier for at, tier in tiers if at <= moment]
    return known[-1] if known else CustomerTier.POTENTIAL


def _recorded_case(
    correlation_id: str, complaint: ComplaintReceived, facts: dict[str, Any], tiers: dict[str, Any]
) -> RecordedCase:
    routed: CaseRouted | None = facts.get("routed")
    resolved: CaseResolved | None = facts.get("resolved")
    tier = routed.customer_tier if routed else _tier_at(tiers[complaint.customer_id], complaint.received_at)
    department = (resolved.department if resolved else None) or (
        routed.departments[0].value if routed and routed.departments else None
    )
    return RecordedCase(
        correlation_id=correlation_id,
        complaint=complaint,
        customer_tier=tier,
        case_id=routed.case_id if routed else None,
        routed_at=routed.routed_at if routed else None,
        department=department,
        acknowledged_at=facts.get("acknowledged_at"),
        resolved=resolved,
        pauses=[(w, start, end) for w, start, end in facts["pauses"]],
        surveys=facts["surveys"],
    )


# --- routing -------------------------------------------------------------------------------


@dataclass
class _Routed:
    record: RecordedCase
    severity: Severity
    final_severity: Severity
    breaches: list[CaseSlaBreached]
    escalations: int


def _met_at(record: RecordedCase) -> dict[str, datetime | None]:
    resolved_at = record.resolved.resolved_at if record.resolved else None
    responses = [t for t in (record.acknowledged_at, resolved_at) if t is not None]
    return {"first_response": min(responses, default=None), "resolution": resolved_at}


def route_case(record: RecordedCase, policy: RoutingPolicy, as_of: datetime) -> _Routed:
    """Tier, then every breach the real handling times would have caused, in time order."""
    from services.routing.escalation import on_timer
    from services.routing.lifecycle import route
    from services.routing.sla import Pause

    complaint = record.complaint
    routed_at = record.routed_at or complaint.received_at
    case = route(complaint, record.customer_tier, record.case_id or record.correlation_id, routed_at, policy).case
    if record.pauses:
        pauses = [Pause(waiting_on=w, started_at=s, ended_at=e) for w, s, e in record.pauses]  # type: ignore[arg-type]
        case = case.model_copy(update={"pauses": pauses})
    severity = case.severity
    met = _met_at(record)
    breaches: list[CaseSlaBreached] = []
    escalations = 0
    for _ in range(MAX_STEPS):
        due = [
            t for t in case.timers(policy)
            if t.kind == "breach" and t.clock in met and t.due_at < (met[t.clock] or as_of)
        ]
        outcome = on_timer(case, due[0], due[0].due_at, policy) if due else None
        if outcome is None:
            break
        case = outcome.case
        breaches += [e for e in outcome.events if isinstance(e, CaseSlaBreached)]
        escalations += sum(1 for e in outcome.events if e.event_type == "case.escalated.v1")
    return _Routed(record, severity, case.severity, breaches, escalations)


# --- recovery ------------------------------------------------------------------------------


@dataclass
class _Trigger:
    at: datetime
    reason: str
    routed: _Routed
    severity: Severity


def _triggers(routed: list[_Routed], policy: RecoveryPolicy) -> list[_Trigger]:
    found: list[_Trigger] = []
    rule = policy.sla_breach
    for r in routed:
        if rule.compensate_at_once:
            found += [_Trigger(b.due_at, "sla_breach", r, b.severity) for b in r.breaches if b.clock in rule.clocks]
        if r.record.resolved is not None:
            found.append(_Trigger(r.record.resolved.resolved_at, "case_resolved", r, r.final_severity))
        found += [_Trigger(s.answered_at, "low_survey", r, r.final_severity) for s in r.record.surveys
                  if _is_low(policy, s)]
    return sorted(found, key=lambda t: t.at)


def _is_low(policy: RecoveryPolicy, survey: SurveyAnswered) -> bool:
    from services.recovery.decision import is_low_survey

    return is_low_survey(policy, survey.csat, survey.nps)


def _month(policy: RecoveryPolicy, at: datetime) -> str:
    month_of = getattr(policy.budgets, "month_of", None)
    return month_of(at) if month_of else at.strftime("%Y-%m")


class _Ledger:
    """Compensations decided so far, for caps, once-only rules, repeat complaints and budgets."""

    def __init__(self, policy: RecoveryPolicy, routed: list[_Routed]) -> None:
        self.policy = policy
        self.window = timedelta(days=policy.caps.window_days)
        self.given: dict[str, list[tuple[datetime, Any]]] = defaultdict(list)
        self.spent: Counter[tuple[str, str]] = Counter()
        self.opened = [(r.record.customer_id, r.record.routed_at or r.record.complaint.received_at,
                        r.record.correlation_id) for r in routed]

    def prior(self, customer: str, case_id: str, now: datetime) -> list[Any]:
        from services.recovery.caps import PriorCompensation

        return [
            PriorCompensation(reason=p.reason, value_minor=p.value_minor, case_id=p.case_id, incident_id=p.incident_id)
            for at, p in self.given[customer]
            if now - at <= self.window or p.case_id == case_id
        ]

    def repeats(self, customer: str, correlation_id: str, now: datetime) -> int:
        return sum(1 for c, at, cid in self.opened
                   if c == customer and cid != correlation_id and now - self.window <= at <= now)

    def budget_left(self, department: str | None, now: datetime) -> int:
        key = (department or "", _month(self.policy, now))
        return self.policy.budgets.monthly_for(department) - self.spent[key]

    def record(self, customer: str, department: str | None, now: datetime, prior: Any) -> None:
        self.given[customer].append((now, prior))
        self.spent[(department or "", _month(self.policy, now))] += prior.value_minor


def compensate(routed: list[_Routed], policy: RecoveryPolicy) -> tuple[dict[str, TierMoney], dict[str, int]]:
    """Decide every trigger in time order; money per customer tier and per complaint."""
    from services.recovery.caps import PriorCompensation
    from services.recovery.decision import CaseModifiers, DecisionRequest, decide

    ledger = _Ledger(policy, routed)
    money: dict[str, TierMoney] = {t.value: TierMoney() for t in CustomerTier}
    per_case: Counter[str] = Counter()
    for trigger in _triggers(routed, policy):
        record = trigger.routed.record
        case_id = record.case_id or record.correlation_id
        resolved = record.resolved
        request = DecisionRequest(
            customer_tier=record.customer_tier,
            severity=trigger.severity,
            reason=trigger.reason,  # type: ignore[arg-type]
            case_id=case_id,
            resolution_code=resolved.resolution_code if resolved and trigger.reason == "case_resolved" else None,
            modifiers=CaseModifiers(
                sla_breached=bool(trigger.routed.breaches),
                repeat_complaints_30d=ledger.repeats(record.customer_id, record.correlation_id, trigger.at)
                if trigger.reason == "case_resolved" else 0,
                first_handling_failed=bool(resolved and not resolved.first_handling),
            ),
            prior=ledger.prior(record.customer_id, case_id, trigger.at),
            budget_left_minor=ledger.budget_left(record.department, trigger.at),
            acting_role=policy.approvals.automatic_role,
        )
        decision = decide(policy, request)
        if not decision.compensates:
            continue
        value = decision.default_value_minor
        given = PriorCompensation(reason=trigger.reason, value_minor=value, case_id=case_id)  # type: ignore[arg-type]
        ledger.record(record.customer_id, record.department, trigger.at, given)
        tier = money[decision.customer_tier.value]
        tier.count += 1
        tier.total_minor += value
        tier.approvals += 1 if decision.needs_approval else 0
        per_case[record.correlation_id] += value
    return money, dict(per_case)


# --- both ----------------------------------------------------------------------------------


def targets_of(policy: RoutingPolicy) -> dict[str, dict[str, float]]:
    """SLA targets per severity tier, in seconds."""
    return {
        severity.value: {clock: policy.targets(severity).target(clock).total_seconds()
                         for clock in ("first_response", "next_update", "resolution")}
        for severity in Severity
    }


def replay(recorded: Recorded, routing: RoutingPolicy, recovery: RecoveryPolicy) -> PolicyOutcome:
    """What ``routing`` and ``recovery`` would have done with the recorded complaints."""
    routed = [route_case(record, routing, recorded.as_of) for record in recorded.cases]
    money, per_case = compensate(routed, recovery)
    results = {
        r.record.correlation_id: CaseResult(
            correlation_id=r.record.correlation_id,
            customer_tier=r.record.customer_tier.value,
            severity=r.severity.value,
            final_severity=r.final_severity.value,
            breaches=[(b.clock, b.due_at, b.severity.value) for b in r.breaches],
            escalations=r.escalations,
            compensation_minor=per_case.get(r.record.correlation_id, 0),
        )
        for r in routed
    }
    tiers = Counter(r.severity.value for r in routed)
    return PolicyOutcome(
        routing_version=routing.version,
        recovery_version=recovery.version,
        currency=recovery.currency,
        cases_per_tier={s.value: tiers.get(s.value, 0) for s in Severity},
        targets=targets_of(routing),
        breaches={clock: sum(1 for r in routed for b in r.breaches if b.clock == clock) for clock in REPLAYED_CLOCKS},
        escalations=sum(r.escalations for r in routed),
        cases_escalated=sum(1 for r in routed if r.escalations),
        compensation=money,
        cases=results,
    )
