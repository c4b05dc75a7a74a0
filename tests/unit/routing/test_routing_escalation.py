"""The ladder: warnings, breaches, follow-ups and manual escalation."""

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from services.routing import escalation, lifecycle
from services.routing.case import Actor, CaseSnapshot, ForbiddenError, IllegalTransitionError
from services.routing.policy import RoutingPolicy
from services.routing.sla import TimerSpec
from shared.events.cases import CaseEscalated, CaseResumed, CaseSlaBreached, CaseSlaWarning
from shared.events.vocabulary import Role, Severity

H = timedelta(hours=1)
AGENT = Actor(subject="agent-li", role=Role.AGENT)
SUPERVISOR = Actor(subject="sup-zhao", role=Role.SUPERVISOR)
MakeCase = Callable[..., CaseSnapshot]


@pytest.mark.parametrize(
    ("level", "severity", "expected"),
    [
        (Role.AGENT, Severity.P3, (Role.SUPERVISOR, Severity.P2)),
        (Role.SUPERVISOR, Severity.P2, (Role.MANAGER, Severity.P1)),
        (Role.SUPERVISOR, Severity.P1, (Role.MANAGER, Severity.P1)),
        (Role.MANAGER, Severity.P3, (Role.MANAGER, Severity.P2)),
        (Role.MANAGER, Severity.P1, None),
    ],
)
def test_ladder_steps(level: Role, severity: Severity, expected: tuple | None, policy: RoutingPolicy) -> None:
    step = escalation.next_step(level, severity, policy)
    assert (None if step is None else (step.to_level, step.to_severity)) == expected


def test_warning_at_75_percent(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = make_case()
    first = case.timers(policy)[0]
    assert (first.kind, first.clock, first.due_at) == ("warning", "first_response", t0 + 3 * H)
    outcome = escalation.on_timer(case, first, first.due_at, policy)
    (event,) = outcome.events
    assert isinstance(event, CaseSlaWarning) and event.clock == "first_response" and event.due_at == t0 + 3 * H
    assert outcome.case.clocks["first_response"].warned
    assert outcome.case.level == Role.AGENT
    # The same timer again (another replica, a redelivery) does nothing.
    assert escalation.on_timer(outcome.case, first, first.due_at, policy) is None


def test_breach_climbs_the_ladder_and_tightens_the_clocks(
    make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    case = make_case()
    breach = TimerSpec(kind="breach", clock="first_response", due_at=t0 + 4 * H)
    outcome = escalation.on_timer(case, breach, t0 + 4 * H, policy)
    breached, escalated = outcome.events
    assert isinstance(breached, CaseSlaBreached) and breached.severity == Severity.P3
    assert isinstance(escalated, CaseEscalated)
    assert (escalated.from_level, escalated.to_level, escalated.from_severity, escalated.to_severity) == (
        "agent",
        "supervisor",
        "P3",
        "P2",
    )
    assert escalated.reason == "first_response deadline passed"
    raised = outcome.case
    assert (raised.level, raised.severity, raised.escalations) == (Role.SUPERVISOR, Severity.P2, 1)
    due = raised.deadlines(policy)
    # The supervisor gets a P2 window to respond; the other clocks shrink to P2 targets from now.
    assert due.first_response_due == t0 + 4 * H + 2 * H
    assert due.next_update_due == t0 + 4 * H + 4 * H
    assert due.resolution_due == t0 + 4 * H + 24 * H
    assert raised.sla_breached()
    assert escalation.on_timer(raised, breach, t0 + 4 * H, policy) is None


def test_a_case_left_alone_climbs_to_the_top_and_stops(
    make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    case = make_case(category="policy_question")
    steps = []
    for _ in range(50):
        timers = case.timers(policy)
        if not timers:
            break
        outcome = escalation.on_timer(case, timers[0], timers[0].due_at, policy)
        case = outcome.case
        steps += [(e.to_level, e.to_severity) for e in outcome.events if isinstance(e, CaseEscalated)]
    assert steps == [("supervisor", "P3"), ("manager", "P2"), ("manager", "P1")]
    assert (case.level, case.severity) == (Role.MANAGER, Severity.P1)
    assert case.timers(policy) == []


def test_stale_early_and_resolved_timers_do_nothing(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = make_case()
    breach = TimerSpec(kind="breach", clock="first_response", due_at=t0 + 4 * H)
    assert escalation.on_timer(case, breach, t0 + 3 * H, policy) is None
    acked = lifecycle.acknowledge(case, AGENT, t0 + H, policy).case
    assert escalation.on_timer(acked, breach, t0 + 4 * H, policy) is None
    paused = lifecycle.pause(acked, AGENT, t0 + 2 * H, policy, "third_party").case
    resumed = lifecycle.resume(paused, AGENT, t0 + 3 * H, policy).case
    old_resolution = TimerSpec(kind="breach", clock="resolution", due_at=t0 + 48 * H)
    assert escalation.on_timer(resumed, old_resolution, t0 + 48 * H, policy) is None
    done = lifecycle.resolve(resumed, AGENT, t0 + 4 * H, policy, "fixed", True).case
    assert escalation.on_timer(done, old_resolution, t0 + 51 * H, policy) is None


def test_follow_up_escalates_at_once(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    outcome = escalation.follow_up(make_case(), t0 + H, policy, count=1)
    (event,) = outcome.events
    assert isinstance(event, CaseEscalated)
    assert (event.to_level, event.to_severity, event.by) == ("supervisor", "P2", "customer")
    assert event.reason == "customer followed up (1)"
    assert outcome.case.follow_ups == 1
    # P2 first response (2 h) from now is sooner than the P3 deadline (4 h from intake).
    assert outcome.case.deadlines(policy).first_response_due == t0 + 3 * H


def test_follow_up_from_a_customer_we_wait_on_is_their_answer(
    make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    case = lifecycle.acknowledge(make_case(), AGENT, t0, policy).case
    case = lifecycle.pause(case, AGENT, t0 + H, policy, "customer").case
    outcome = escalation.follow_up(case, t0 + 2 * H, policy)
    assert [type(e) for e in outcome.events] == [CaseResumed]
    assert (outcome.case.status, outcome.case.level) == ("open", Role.AGENT)


def test_follow_up_while_waiting_on_a_third_party_escalates(
    make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    case = lifecycle.acknowledge(make_case(), AGENT, t0, policy).case
    case = lifecycle.pause(case, AGENT, t0 + H, policy, "third_party").case
    outcome = escalation.follow_up(case, t0 + 2 * H, policy)
    assert [type(e) for e in outcome.events] == [CaseEscalated]
    assert outcome.case.status == "waiting"


def test_follow_up_on_a_resolved_or_topped_out_case_is_only_recorded(
    make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    done = lifecycle.resolve(make_case(), AGENT, t0, policy, "answered", True).case
    assert escalation.follow_up(done, t0 + H, policy).events == []
    top = make_case().model_copy(update={"level": Role.MANAGER, "severity": Severity.P1})
    outcome = escalation.follow_up(top, t0 + H, policy)
    assert outcome.events == [] and outcome.record.detail["effect"] == "recorded"


def test_manual_escalation(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    outcome = escalation.escalate(make_case(), AGENT, t0 + H, policy, "customer is a journalist")
    (event,) = outcome.events
    assert (event.by, event.reason, event.to_level) == ("agent-li", "customer is a journalist", "supervisor")
    with pytest.raises(ForbiddenError, match="needs role supervisor"):
        escalation.escalate(outcome.case, AGENT, t0 + H, policy, "again")
    top = make_case().model_copy(update={"level": Role.MANAGER, "severity": Severity.P1})
    with pytest.raises(IllegalTransitionError, match="top of the ladder"):
        escalation.escalate(top, Actor(subject="m", role=Role.MANAGER), t0, policy, "more")
    done = lifecycle.resolve(make_case(), AGENT, t0, policy, "answered", True).case
    with pytest.raises(IllegalTransitionError, match="reopen it first"):
        escalation.escalate(done, SUPERVISOR, t0, policy, "late")
