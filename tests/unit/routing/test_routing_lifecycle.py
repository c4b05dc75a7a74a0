"""Routing a complaint and every operator action on a case, with the errors each can raise."""

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from services.routing import lifecycle
from services.routing.case import (
    Actor,
    CaseSnapshot,
    ForbiddenError,
    IllegalTransitionError,
    InvalidActionError,
    target_for,
)
from services.routing.policy import RoutingPolicy
from shared.events.cases import (
    CaseAcknowledged,
    CaseHandedOff,
    CasePaused,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    CaseRouted,
)
from shared.events.vocabulary import Role, Severity

H = timedelta(hours=1)
M = timedelta(minutes=1)
AGENT = Actor(subject="agent-li", role=Role.AGENT)
AGENT2 = Actor(subject="agent-wang", role=Role.AGENT)
SUPERVISOR = Actor(subject="sup-zhao", role=Role.SUPERVISOR)
NOBODY = Actor(subject="bot", role=None)

MakeCase = Callable[..., CaseSnapshot]


def test_route_gives_tier_queue_and_three_deadlines(policy: RoutingPolicy, make_complaint, t0: datetime) -> None:
    outcome = lifecycle.route(make_complaint(), "potential", "case-9", t0 + timedelta(milliseconds=3), policy)
    case, (event,) = outcome.case, outcome.events
    assert (case.status, case.severity, case.queue, case.owner, case.level) == (
        "new",
        "P3",
        "product_support",
        None,
        "agent",
    )
    assert isinstance(event, CaseRouted)
    assert event.deadlines.first_response_due == t0 + 4 * H
    assert event.deadlines.next_update_due == t0 + 12 * H
    assert event.deadlines.resolution_due == t0 + 48 * H
    assert event.severity_reasons[-1] == "result P3"
    assert event.policy_version == policy.version
    assert outcome.record.detail["queue_reason"] == "no department named; category product_usage"


def test_green_channel_resolves_within_24_hours(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = make_case(category="policy_question", departments=("billing", "logistics"))
    assert case.queue == "green_channel"
    assert case.deadlines(policy).resolution_due == t0 + 24 * H


def test_complex_cases_engage_a_specialist_within_12_hours(policy: RoutingPolicy) -> None:
    assert target_for(Severity.P4, "next_update", "policy_desk", True, policy) == 12 * H
    assert target_for(Severity.P4, "next_update", "policy_desk", False, policy) == 24 * H


def test_acknowledge_is_the_first_response_and_takes_ownership(
    make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    outcome = lifecycle.acknowledge(make_case(), AGENT, t0 + 90 * M, policy)
    case, (event,) = outcome.case, outcome.events
    assert isinstance(event, CaseAcknowledged)
    assert event.first_response_seconds == 5400
    assert (case.status, case.owner, case.assignee) == ("open", "agent-li", "agent-li")
    assert case.clocks["first_response"].met_at == t0 + 90 * M
    # The next-update window starts at the first response.
    assert case.deadlines(policy).next_update_due == t0 + 90 * M + 12 * H
    assert (outcome.record.action, outcome.record.by, outcome.record.role) == ("acknowledge", "agent-li", "agent")


def test_acknowledge_twice_is_illegal(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = lifecycle.acknowledge(make_case(), AGENT, t0, policy).case
    with pytest.raises(IllegalTransitionError, match="already acknowledged"):
        lifecycle.acknowledge(case, AGENT2, t0 + M, policy)


@pytest.mark.parametrize("actor", [NOBODY])
def test_acknowledge_without_a_role_is_forbidden(
    actor: Actor, make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    with pytest.raises(ForbiddenError, match="needs role agent"):
        lifecycle.acknowledge(make_case(), actor, t0, policy)


def test_an_escalated_case_needs_the_level_it_reached(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = make_case().model_copy(update={"level": Role.SUPERVISOR})
    with pytest.raises(ForbiddenError, match="needs role supervisor"):
        lifecycle.acknowledge(case, AGENT, t0, policy)
    assert lifecycle.acknowledge(case, SUPERVISOR, t0, policy).case.owner == "sup-zhao"


def test_handoff_keeps_the_owner_and_is_timed_until_taken_up(
    make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    case = lifecycle.acknowledge(make_case(), AGENT, t0, policy).case
    handed = lifecycle.hand_off(case, AGENT, t0 + H, policy, "billing", "refund needed")
    assert handed.events == []
    assert (handed.case.queue, handed.case.assignee, handed.case.owner) == ("billing", None, "agent-li")
    assert handed.case.handoff_count == 1
    taken = lifecycle.acknowledge(handed.case, AGENT2, t0 + H + 4 * M, policy)
    (event,) = taken.events
    assert isinstance(event, CaseHandedOff)
    assert (event.from_queue, event.to_queue, event.from_owner, event.to_owner) == (
        "product_support",
        "billing",
        "agent-li",
        "agent-wang",
    )
    assert (event.reason, event.handoff_seconds, event.by) == ("refund needed", 240, "agent-li")
    assert (taken.case.owner, taken.case.assignee, taken.case.pending_handoff) == ("agent-li", "agent-wang", None)


def test_handoff_before_any_response_then_the_receiver_owns_it(
    make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    handed = lifecycle.hand_off(make_case(), AGENT, t0 + M, policy, "billing", "wrong queue")
    taken = lifecycle.acknowledge(handed.case, AGENT2, t0 + 3 * M, policy)
    assert [type(e) for e in taken.events] == [CaseHandedOff, CaseAcknowledged]
    assert taken.case.owner == "agent-wang"


def test_third_handoff_goes_to_the_green_channel(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = lifecycle.acknowledge(make_case(), AGENT, t0, policy).case
    for n, queue in enumerate(["billing", "logistics"], start=1):
        case = lifecycle.hand_off(case, AGENT, t0 + n * H, policy, queue, "not ours").case
        case = lifecycle.acknowledge(case, AGENT2, t0 + n * H + M, policy).case
    third = lifecycle.hand_off(case, AGENT2, t0 + 3 * H, policy, "billing", "back to billing")
    assert third.case.queue == "green_channel"
    assert third.case.handoff_count == 3
    assert "green channel" in third.case.pending_handoff.reason
    # The green channel resolves within 24 h of entering it.
    assert third.case.deadlines(policy).resolution_due == t0 + 3 * H + 24 * H
    assert third.case.owner == "agent-li"


def test_bouncing_a_pending_handoff_completes_it(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = lifecycle.acknowledge(make_case(), AGENT, t0, policy).case
    case = lifecycle.hand_off(case, AGENT, t0 + H, policy, "billing", "refund").case
    bounced = lifecycle.hand_off(case, AGENT2, t0 + H + 10 * M, policy, "logistics", "parcel lost, not billing")
    (event,) = bounced.events
    assert (event.to_queue, event.to_owner, event.handoff_seconds) == ("billing", "agent-wang", 600)
    assert bounced.case.pending_handoff.from_queue == "billing"
    assert bounced.case.handoff_count == 2


@pytest.mark.parametrize(
    ("queue", "reason", "error", "message"),
    [
        ("mars", "x", InvalidActionError, "unknown queue 'mars'"),
        ("billing", "  ", InvalidActionError, "needs a reason"),
        ("product_support", "x", IllegalTransitionError, "already in queue product_support"),
    ],
)
def test_bad_handoffs(
    queue: str, reason: str, error: type, message: str, make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    with pytest.raises(error, match=message):
        lifecycle.hand_off(make_case(), AGENT, t0, policy, queue, reason)


def test_pending_handoff_blocks_other_work(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = lifecycle.acknowledge(make_case(), AGENT, t0, policy).case
    case = lifecycle.hand_off(case, AGENT, t0, policy, "billing", "refund").case
    with pytest.raises(IllegalTransitionError, match="hand-off to billing is pending"):
        lifecycle.resolve(case, AGENT, t0, policy, "refunded", False)
    with pytest.raises(IllegalTransitionError, match="pending"):
        lifecycle.record_update(case, AGENT, t0, policy, "working on it")


def test_pause_and_resume_shift_every_deadline(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = lifecycle.acknowledge(make_case(), AGENT, t0 + H, policy).case
    before = case.deadlines(policy)
    paused = lifecycle.pause(case, AGENT, t0 + 2 * H, policy, "customer")
    assert isinstance(paused.events[0], CasePaused)
    assert paused.case.status == "waiting"
    assert paused.case.deadlines(policy).resolution_due is None
    assert paused.case.timers(policy) == []
    resumed = lifecycle.resume(paused.case, AGENT, t0 + 5 * H, policy)
    (event,) = resumed.events
    assert isinstance(event, CaseResumed) and event.paused_seconds == 3 * 3600
    after = resumed.case.deadlines(policy)
    assert after.resolution_due == before.resolution_due + 3 * H
    assert after.next_update_due == before.next_update_due + 3 * H
    assert resumed.case.paused_time(t0 + 9 * H) == 3 * H


@pytest.mark.parametrize(
    ("status", "action", "message"),
    [
        ("new", "pause", "only an acknowledged, open case can wait"),
        ("waiting", "pause", "only an acknowledged, open case can wait"),
        ("open", "resume", "only a waiting case can resume"),
        ("new", "update", "an update needs an acknowledged, open case"),
        ("waiting", "handoff", "a waiting case cannot be handed off"),
        ("waiting", "acknowledge", "a waiting case cannot be acknowledged"),
        ("open", "reopen", "only a resolved case can be reopened"),
    ],
)
def test_illegal_transitions(
    status: str, action: str, message: str, make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    case = make_case().model_copy(update={"status": status})
    calls = {
        "pause": lambda: lifecycle.pause(case, SUPERVISOR, t0, policy, "customer"),
        "resume": lambda: lifecycle.resume(case, SUPERVISOR, t0, policy),
        "update": lambda: lifecycle.record_update(case, SUPERVISOR, t0, policy, "note"),
        "handoff": lambda: lifecycle.hand_off(case, SUPERVISOR, t0, policy, "billing", "x"),
        "acknowledge": lambda: lifecycle.acknowledge(case, SUPERVISOR, t0, policy),
        "reopen": lambda: lifecycle.reopen(case, SUPERVISOR, t0, policy, "customer says not fixed"),
    }
    with pytest.raises(IllegalTransitionError, match=message):
        calls[action]()


def test_pause_needs_a_known_reason(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = lifecycle.acknowledge(make_case(), AGENT, t0, policy).case
    with pytest.raises(InvalidActionError, match="waiting_on must be one of"):
        lifecycle.pause(case, AGENT, t0, policy, "lunch")


def test_update_restarts_the_next_update_clock(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = lifecycle.acknowledge(make_case(), AGENT, t0, policy).case
    updated = lifecycle.record_update(case, AGENT, t0 + 5 * H, policy, "parts ordered")
    assert updated.case.deadlines(policy).next_update_due == t0 + 17 * H
    assert updated.record.detail == {"note": "parts ordered"}


def test_resolve(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = lifecycle.acknowledge(make_case(departments=("billing",)), AGENT, t0, policy).case
    outcome = lifecycle.resolve(case, AGENT, t0 + 2 * H, policy, "refunded", True)
    (event,) = outcome.events
    assert isinstance(event, CaseResolved)
    assert (event.resolution_code, event.first_handling, event.sla_breached) == ("refunded", True, False)
    assert (event.queue, event.department, event.resolved_by, event.handoff_count) == (
        "billing",
        "billing",
        "agent-li",
        0,
    )
    assert outcome.case.status == "resolved"
    assert outcome.case.timers(policy) == []
    with pytest.raises(IllegalTransitionError, match="already resolved"):
        lifecycle.resolve(outcome.case, AGENT, t0 + 3 * H, policy, "refunded", True)


def test_resolving_a_new_case_is_also_its_first_response(
    make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    outcome = lifecycle.resolve(make_case(), AGENT, t0 + M, policy, "answered", True)
    assert [type(e) for e in outcome.events] == [CaseAcknowledged, CaseResolved]
    assert outcome.case.owner == "agent-li"


def test_resolving_a_waiting_case_closes_the_pause(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = lifecycle.acknowledge(make_case(), AGENT, t0, policy).case
    case = lifecycle.pause(case, AGENT, t0 + H, policy, "customer").case
    outcome = lifecycle.resolve(case, AGENT, t0 + 30 * H, policy, "withdrawn", False)
    assert [type(e) for e in outcome.events] == [CaseResumed, CaseResolved]
    assert outcome.case.pauses[-1].ended_at == t0 + 30 * H


def test_resolve_checks_code_and_first_handling(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = lifecycle.acknowledge(make_case(), AGENT, t0, policy).case
    with pytest.raises(InvalidActionError, match="unknown resolution code 'magic'"):
        lifecycle.resolve(case, AGENT, t0, policy, "magic", False)
    case = lifecycle.hand_off(case, AGENT, t0, policy, "billing", "refund").case
    case = lifecycle.acknowledge(case, AGENT2, t0 + M, policy).case
    with pytest.raises(IllegalTransitionError, match="cannot be resolved at first handling"):
        lifecycle.resolve(case, AGENT2, t0 + H, policy, "refunded", True)
    assert lifecycle.resolve(case, AGENT2, t0 + H, policy, "refunded", False).events[0].handoff_count == 1


def test_reopen_needs_a_supervisor_and_restarts_the_resolution_clock(
    make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    case = lifecycle.resolve(make_case(), AGENT, t0 + H, policy, "answered", True).case
    with pytest.raises(ForbiddenError, match="reopen on a case at agent level needs role supervisor"):
        lifecycle.reopen(case, AGENT, t0 + 2 * H, policy, "not fixed")
    with pytest.raises(InvalidActionError, match="needs a reason"):
        lifecycle.reopen(case, SUPERVISOR, t0 + 2 * H, policy, "")
    outcome = lifecycle.reopen(case, SUPERVISOR, t0 + 2 * H, policy, "not fixed")
    (event,) = outcome.events
    assert isinstance(event, CaseReopened) and event.by == "sup-zhao"
    assert (outcome.case.status, outcome.case.owner, outcome.case.reopen_count) == ("open", "agent-li", 1)
    assert outcome.case.deadlines(policy).resolution_due == t0 + 2 * H + 48 * H
    assert {t.clock for t in outcome.case.timers(policy)} == {"next_update", "resolution"}
    with pytest.raises(IllegalTransitionError, match="first handling"):
        lifecycle.resolve(outcome.case, AGENT, t0 + 3 * H, policy, "fixed", True)


def test_first_handling_left_out_follows_the_case_history(
    make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    direct = lifecycle.resolve(make_case(), AGENT, t0 + H, policy, "answered", None)
    assert direct.case.first_handling is True and direct.events[-1].first_handling is True
    case = lifecycle.hand_off(make_case(), AGENT, t0, policy, "billing", "refund").case
    case = lifecycle.acknowledge(case, AGENT2, t0 + M, policy).case
    after_handoff = lifecycle.resolve(case, AGENT2, t0 + H, policy, "refunded", None)
    assert after_handoff.case.first_handling is False
