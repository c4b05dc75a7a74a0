"""What the queue sorts and filters on: row columns and breach risk derived from the pure case."""

from collections.abc import Callable
from datetime import datetime, timedelta

from services.routing import escalation, lifecycle
from services.routing.case import Actor, CaseSnapshot
from services.routing.policy import RoutingPolicy
from services.routing.sla import TimerSpec
from services.routing.store import case_columns, timer_key
from services.routing.views import risk_of
from shared.events.vocabulary import Role

H = timedelta(hours=1)
AGENT = Actor(subject="agent-li", role=Role.AGENT)
MakeCase = Callable[..., CaseSnapshot]


def test_risk_moves_from_on_track_to_at_risk_to_breached(
    make_case: MakeCase, policy: RoutingPolicy, t0: datetime
) -> None:
    case = make_case()
    warn = case_columns(case, policy, t0)["next_warn_at"]  # the row's stored earliest warning
    assert warn == t0 + 3 * H  # 75% of the 4 h first response
    assert risk_of(case, warn, t0 + H) == "on_track"
    assert risk_of(case, warn, t0 + 3 * H) == "at_risk"
    breach = TimerSpec(kind="breach", clock="first_response", due_at=t0 + 4 * H)
    breached = escalation.on_timer(case, breach, t0 + 4 * H, policy).case
    assert risk_of(breached, case_columns(breached, policy, t0 + 4 * H)["next_warn_at"], t0 + 4 * H) == "breached"
    acknowledged = lifecycle.acknowledge(case, AGENT, t0 + H, policy).case
    resolved = lifecycle.resolve(acknowledged, AGENT, t0 + 2 * H, policy, "fixed", None).case
    assert case_columns(resolved, policy, t0 + 2 * H)["next_warn_at"] is None
    assert risk_of(resolved, warn, t0 + 3 * H) == "on_track"  # a resolved case is never at risk


def test_columns_mirror_the_case(make_case: MakeCase, policy: RoutingPolicy, t0: datetime) -> None:
    case = lifecycle.acknowledge(make_case(), AGENT, t0 + H, policy).case
    case = lifecycle.pause(case, AGENT, t0 + 2 * H, policy, "customer").case
    case = lifecycle.resume(case, AGENT, t0 + 3 * H, policy).case
    row = case_columns(case, policy, t0 + 3 * H)
    assert (row["state"], row["owner"], row["first_response_seconds"]) == ("open", "agent-li", 3600)
    assert (row["pause_count"], row["paused_seconds"]) == (1, 3600)
    # The earliest running deadline: the next update, 12 h after the first response plus 1 h paused.
    assert row["next_due_at"] == row["next_update_due"] == t0 + 14 * H
    assert row["first_response_due"] == t0 + 4 * H  # met, still shown
    paused = lifecycle.pause(case, AGENT, t0 + 4 * H, policy, "third_party").case
    held = case_columns(paused, policy, t0 + 4 * H)
    assert held["next_due_at"] is None and held["resolution_due"] is None


def test_timer_keys_name_the_moment(make_case: MakeCase, policy: RoutingPolicy) -> None:
    case = make_case()
    keys = [timer_key(case.case_id, t) for t in case.timers(policy)]
    assert len(keys) == len(set(keys)) == 6
    assert keys[0].startswith("case-1/first_response/warning/")
