"""The compensation decision on tables: tier x severity x modifiers x caps x budgets x roles.

Figures are the shipped policy's (services/recovery/policy.yaml), in fen: 20000 = 200 yuan.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from services.recovery.caps import PriorCompensation
from services.recovery.decision import CaseModifiers, DecisionRequest, decide, is_low_survey
from services.recovery.money import fit_remedy, remedy_value_minor, scale_remedy
from services.recovery.policy import DEFAULT_POLICY_PATH, RecoveryPolicy, load_policy, parse_policy
from shared.events.compensation import Remedy
from shared.events.vocabulary import CustomerTier, Role, Severity

POLICY = load_policy()
HIGH, MID, POT = CustomerTier.HIGH_VALUE, CustomerTier.MID_VALUE, CustomerTier.POTENTIAL


def _policy(**changes: object) -> RecoveryPolicy:
    """The shipped policy with dotted keys replaced."""
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8")))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value
    return parse_policy(data)


def _req(tier: CustomerTier = MID, severity: Severity = Severity.P2, **kw: object) -> DecisionRequest:
    kw.setdefault("reason", "case_resolved")
    kw.setdefault("case_id", "case-1")
    return DecisionRequest(customer_tier=tier, severity=severity, **kw)


def _prior(value: int, reason: str = "case_resolved", case_id: str = "old", **kw: object) -> PriorCompensation:
    return PriorCompensation(reason=reason, value_minor=value, case_id=case_id, **kw)


def _amounts(decision) -> dict[str, int]:
    return {o.option_id: o.points if o.kind == "points" else o.amount_minor for o in decision.options}


def _rules(decision) -> list[str]:
    return [r.split(":")[0] for r in decision.reasons]


# --- tier x severity: the matrix --------------------------------------------------------------

MATRIX = [
    # tier, severity, options (id: amount or points), default, max value, approver for an agent
    (HIGH, Severity.P1, {"credit": 20000, "coupon": 30000, "points": 25000}, "credit", 30000, Role.SUPERVISOR),
    (HIGH, Severity.P2, {"credit": 10000, "coupon": 15000, "points": 12500}, "credit", 15000, None),
    (HIGH, Severity.P3, {"coupon": 10000, "points": 6000, "on_site": 8000}, "coupon", 10000, None),
    (HIGH, Severity.P4, {"points": 2500, "coupon": 3000}, "points", 3000, None),
    (MID, Severity.P1, {"credit": 10000, "coupon": 15000, "points": 15000}, "credit", 15000, None),
    (MID, Severity.P2, {"credit": 5000, "coupon": 8000, "points": 8000}, "credit", 8000, None),
    (MID, Severity.P3, {"coupon": 3000, "points": 4000}, "coupon", 4000, None),
    (MID, Severity.P4, {}, None, 0, None),
    (POT, Severity.P1, {"credit": 5000, "coupon": 8000, "express": 5000}, "credit", 8000, None),
    (POT, Severity.P2, {"points": 5000}, "points", 5000, None),
    (POT, Severity.P3, {"points": 2000}, "points", 2000, None),
    (POT, Severity.P4, {}, None, 0, None),
]


@pytest.mark.parametrize(("tier", "severity", "options", "default", "max_value", "approver"), MATRIX)
def test_matrix_gives_each_tier_and_severity_its_remedies(
    tier: CustomerTier, severity: Severity, options: dict, default: str | None, max_value: int, approver: Role | None
) -> None:
    d = decide(POLICY, _req(tier, severity))
    assert _amounts(d) == options
    assert d.default_option_id == default
    assert d.max_value_minor == max_value
    assert d.required_role == approver
    assert d.needs_approval is (approver is not None)
    assert d.customer_may_choose is (len(options) > 1)
    assert f"matrix.{tier}.{severity}" in _rules(d)
    assert d.currency == "CNY"
    assert all(o.currency == "CNY" for o in d.options)


def test_high_value_always_gets_at_least_mid_value() -> None:
    for severity in Severity:
        high = decide(POLICY, _req(HIGH, severity)).default_value_minor
        mid = decide(POLICY, _req(MID, severity)).default_value_minor
        pot = decide(POLICY, _req(POT, severity)).default_value_minor
        assert high >= mid >= pot, severity


def test_points_count_at_the_high_value_exchange_bonus() -> None:
    d = decide(POLICY, _req(HIGH, Severity.P1))
    points = d.option("points")
    # 25,000 points = 250 yuan at 100 points per yuan, +20% for high value = 300 yuan.
    assert remedy_value_minor(points, POLICY, HIGH) == 30000
    assert remedy_value_minor(points, POLICY, MID) == 25000
    assert points.description == "25,000 loyalty points"


# --- modifiers --------------------------------------------------------------------------------

MODIFIERS = [
    # modifiers, prior, default credit for mid P2 (5000 base), rule expected or absent
    ({}, [], 5000, []),
    ({"sla_breached": True}, [], 6000, ["modifier.sla_breached"]),
    ({"repeat_complaints_30d": 1}, [], 5000, []),
    ({"repeat_complaints_30d": 2}, [], 6200, ["modifier.repeat_complaints"]),
    ({"first_handling_failed": True}, [], 5700, ["modifier.first_handling_failed"]),
    ({"sla_breached": True, "first_handling_failed": True}, [], 6700, ["modifier.sla_breached"]),
    (
        {"sla_breached": True, "repeat_complaints_30d": 5, "first_handling_failed": True},
        [],
        7500,
        ["modifier.max_total"],
    ),
    # The delay already earned its own remedy at breach time: no uplift for it again.
    ({"sla_breached": True}, [_prior(3000, "sla_breach", "case-1")], 5000, ["modifier.sla_breached"]),
    # A breach compensated on another case does not count for this one.
    ({"sla_breached": True}, [_prior(3000, "sla_breach", "case-9")], 6000, ["modifier.sla_breached"]),
]


@pytest.mark.parametrize(("mods", "prior", "credit", "rules"), MODIFIERS)
def test_modifiers_uplift_a_resolved_case(mods: dict, prior: list, credit: int, rules: list[str]) -> None:
    d = decide(POLICY, _req(MID, Severity.P2, modifiers=CaseModifiers(**mods), prior=prior))
    assert d.option("credit").amount_minor == credit
    assert d.option("credit").description == f"{credit // 100}.00 CNY account credit"
    for rule in rules:
        assert rule in _rules(d)
    if not mods:
        assert not [r for r in _rules(d) if r.startswith("modifier.")]


def test_fixed_remedies_are_not_scaled_by_modifiers() -> None:
    d = decide(POLICY, _req(HIGH, Severity.P3, modifiers=CaseModifiers(first_handling_failed=True)))
    assert d.option("on_site").amount_minor == 8000
    assert d.option("coupon").amount_minor == 11500
    assert d.option("coupon").percent == 20


def test_skipped_delay_note_is_explicit() -> None:
    breach = [_prior(3000, "sla_breach", "case-1")]
    d = decide(POLICY, _req(MID, modifiers=CaseModifiers(sla_breached=True), prior=breach))
    assert any("delay was compensated on its own" in r for r in d.reasons)


def test_empty_cell_with_an_uncompensated_breach_earns_the_delay_remedy() -> None:
    d = decide(POLICY, _req(POT, Severity.P4, modifiers=CaseModifiers(sla_breached=True)))
    assert _amounts(d) == {"coupon": 2000}
    assert "sla_breach.potential" in _rules(d)
    breach = [_prior(2000, "sla_breach", "case-1")]
    compensated = decide(POLICY, _req(POT, Severity.P4, modifiers=CaseModifiers(sla_breached=True), prior=breach))
    assert not compensated.compensates


# --- caps -------------------------------------------------------------------------------------

CAPS = [
    # tier, severity, prior values, expected options after the cap
    (MID, Severity.P1, [], {"credit": 10000, "coupon": 15000, "points": 15000}),
    (MID, Severity.P1, [40000], {"credit": 10000, "coupon": 10000, "points": 10000}),
    (MID, Severity.P1, [45000], {"credit": 5000, "coupon": 5000, "points": 5000}),
    (MID, Severity.P1, [49800], {}),  # 2 yuan left: below the 5-yuan floor
    (MID, Severity.P1, [50000], {}),
    (MID, Severity.P1, [60000], {}),  # already over (e.g. after a policy change): nothing, never negative
    (HIGH, Severity.P3, [95000], {"coupon": 5000, "points": 4100}),  # the free visit cannot be cut
    (HIGH, Severity.P3, [92000], {"coupon": 8000, "points": 6000, "on_site": 8000}),
    (POT, Severity.P1, [10000, 10000], {"credit": 5000, "coupon": 8000, "express": 5000}),
    (POT, Severity.P1, [10000, 10000, 1000], {}),  # third compensation in 30 days: count cap
    (POT, Severity.P1, [24000], {"credit": 5000, "coupon": 6000, "express": 5000}),
    (POT, Severity.P1, [26000], {"credit": 4000, "coupon": 4000}),  # express (50) fits only whole: dropped
]


@pytest.mark.parametrize(("tier", "severity", "prior", "options"), CAPS)
def test_caps_cut_and_drop_options(tier: CustomerTier, severity: Severity, prior: list[int], options: dict) -> None:
    d = decide(POLICY, _req(tier, severity, prior=[_prior(v, case_id=f"c{i}") for i, v in enumerate(prior)]))
    assert _amounts(d) == options
    for option in d.options:
        assert remedy_value_minor(option, POLICY, tier) + sum(prior) <= POLICY.caps.for_tier(tier).max_value_minor
    assert any(r.startswith("cap.") for r in d.reasons)


def test_default_falls_back_to_the_first_remaining_option_when_the_cap_drops_it() -> None:
    policy = _policy(matrix__high_value__P3__default="on_site")
    d = decide(policy, _req(HIGH, Severity.P3, prior=[_prior(95000)]))
    assert "on_site" not in _amounts(d)
    assert d.default_option_id == "coupon"


def test_incidents_are_exempt_from_caps_and_do_not_count_against_them() -> None:
    full = [_prior(100000, "incident", None, incident_id="inc-0")]
    incident = decide(POLICY, _req(HIGH, reason="incident", case_id=None, incident_id="inc-1", prior=full))
    assert _amounts(incident) == {"credit": 30000}
    assert "cap.exempt" in _rules(incident)
    case = decide(POLICY, _req(HIGH, Severity.P2, prior=full))
    assert _amounts(case)["credit"] == 10000


def test_incidents_count_when_the_policy_says_so() -> None:
    policy = _policy(incidents__exempt_from_caps=False)
    full = [_prior(100000, "incident", None, incident_id="inc-0")]
    assert not decide(policy, _req(HIGH, Severity.P2, prior=full)).compensates


# --- budgets x roles --------------------------------------------------------------------------

APPROVALS = [
    # tier, severity, acting role, department budget left, required role
    (HIGH, Severity.P1, Role.AGENT, None, Role.SUPERVISOR),  # 300 yuan > agent's 200
    (HIGH, Severity.P1, Role.SUPERVISOR, None, None),
    (HIGH, Severity.P1, Role.MANAGER, None, None),
    (HIGH, Severity.P2, Role.AGENT, None, None),
    (HIGH, Severity.P2, Role.AGENT, 15000, None),  # exactly what is left: fine
    (HIGH, Severity.P2, Role.AGENT, 14900, Role.MANAGER),  # over budget: manager
    (HIGH, Severity.P2, Role.SUPERVISOR, 0, Role.MANAGER),
    (HIGH, Severity.P2, Role.MANAGER, -5000, None),  # a manager may overspend the budget
    (HIGH, Severity.P1, Role.AGENT, 100, Role.MANAGER),  # both rules: the senior approver wins
    (MID, Severity.P3, Role.AGENT, 10**9, None),
]


@pytest.mark.parametrize(("tier", "severity", "role", "budget", "approver"), APPROVALS)
def test_approval_follows_role_limits_and_budget(
    tier: CustomerTier, severity: Severity, role: Role, budget: int | None, approver: Role | None
) -> None:
    d = decide(POLICY, _req(tier, severity, acting_role=role, budget_left_minor=budget))
    assert d.required_role == approver
    assert d.needs_approval is (approver is not None)
    if budget is not None and budget < d.max_value_minor:
        assert "budget.department" in _rules(d)
    assert ("approval.required" in _rules(d)) is (approver is not None)


def test_nobody_may_grant_above_the_top_limit() -> None:
    policy = _policy(approvals__limits_minor={"agent": 5000, "supervisor": 10000, "manager": 20000})
    d = decide(policy, _req(HIGH, Severity.P1, acting_role=Role.AGENT))
    assert _amounts(d) == {"credit": 20000, "coupon": 20000, "points": 16600}
    assert d.required_role == Role.MANAGER
    assert "approval.top_limit" in _rules(d)


# --- reasons other than a resolved case -------------------------------------------------------

OTHER_REASONS = [
    ("sla_breach", HIGH, {"coupon": 5000, "priority": 5000}, "coupon"),
    ("sla_breach", MID, {"coupon": 3000, "points": 3000}, "coupon"),
    ("sla_breach", POT, {"coupon": 2000}, "coupon"),
    ("low_survey", HIGH, {"credit": 5000, "points": 5000, "care_visit": 5000}, "credit"),
    ("low_survey", MID, {"coupon": 3000, "points": 3000}, "coupon"),
    ("low_survey", POT, {"coupon": 2000}, "coupon"),
    ("incident", HIGH, {"credit": 30000}, "credit"),
    ("incident", MID, {"credit": 20000}, "credit"),
    ("incident", POT, {"credit": 20000}, "credit"),
]


@pytest.mark.parametrize(("reason", "tier", "options", "default"), OTHER_REASONS)
def test_other_reasons_use_their_tier_tables(reason: str, tier: CustomerTier, options: dict, default: str) -> None:
    # Severity and case modifiers do not change these tables.
    mods = CaseModifiers(sla_breached=True, repeat_complaints_30d=9, first_handling_failed=True)
    d = decide(POLICY, _req(tier, Severity.P1, reason=reason, modifiers=mods, incident_id="inc-1"))
    assert _amounts(d) == options
    assert d.default_option_id == default
    assert not [r for r in _rules(d) if r.startswith("modifier.")]


def test_incident_remedy_declared_by_the_operator_replaces_the_table() -> None:
    remedy = Remedy(option_id="outage", kind="account_credit", amount_minor=15000)
    d = decide(POLICY, _req(MID, reason="incident", incident_id="inc-1", requested_remedy=remedy))
    assert _amounts(d) == {"outage": 15000}
    assert not d.customer_may_choose
    assert "remedy.requested" in _rules(d)


def test_manual_compensation_needs_a_remedy() -> None:
    assert not decide(POLICY, _req(MID, reason="manual")).compensates
    remedy = Remedy(option_id="goodwill", kind="coupon_amount", amount_minor=25000)
    d = decide(POLICY, _req(MID, reason="manual", requested_remedy=remedy, acting_role=Role.AGENT))
    # 250 yuan is within the mid-value cap of 500 but above the agent's 200.
    assert _amounts(d) == {"goodwill": 25000}
    assert d.required_role == Role.SUPERVISOR


def test_no_compensation_resolution_codes_give_nothing() -> None:
    d = decide(POLICY, _req(HIGH, Severity.P1, resolution_code="duplicate"))
    assert not d.compensates
    assert "resolution.no_compensation" in _rules(d)
    assert decide(POLICY, _req(HIGH, Severity.P1, resolution_code="fixed")).compensates


# --- once only --------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["case_resolved", "sla_breach", "low_survey"])
def test_once_per_case_and_reason(reason: str) -> None:
    again = decide(POLICY, _req(HIGH, Severity.P1, reason=reason, prior=[_prior(100, reason, "case-1")]))
    assert not again.compensates
    assert "once.case" in _rules(again)
    other = "low_survey" if reason != "low_survey" else "sla_breach"
    assert decide(POLICY, _req(HIGH, Severity.P1, reason=reason, prior=[_prior(100, other, "case-1")])).compensates


def test_rejected_or_reversed_compensation_still_counts_once_but_not_against_caps() -> None:
    rejected = _prior(40000, "case_resolved", "case-1", active=False)
    again = decide(POLICY, _req(MID, Severity.P1, prior=[rejected]))
    assert not again.compensates
    other_case = decide(POLICY, _req(MID, Severity.P1, case_id="case-2", prior=[rejected] * 4))
    assert _amounts(other_case) == {"credit": 10000, "coupon": 15000, "points": 15000}


def test_a_reversed_breach_compensation_leaves_the_delay_uncompensated() -> None:
    reversed_breach = _prior(3000, "sla_breach", "case-1", active=False)
    d = decide(POLICY, _req(MID, Severity.P2, modifiers=CaseModifiers(sla_breached=True), prior=[reversed_breach]))
    assert d.option("credit").amount_minor == 6000


def test_once_per_incident_and_customer() -> None:
    prior = [_prior(20000, "incident", None, incident_id="inc-1")]
    again = decide(POLICY, _req(MID, reason="incident", case_id=None, incident_id="inc-1", prior=prior))
    assert not again.compensates
    assert "once.incident" in _rules(again)
    assert decide(POLICY, _req(MID, reason="incident", case_id=None, incident_id="inc-2", prior=prior)).compensates


# --- offers -----------------------------------------------------------------------------------


def test_offer_expiry_and_choice() -> None:
    d = decide(POLICY, _req(MID, Severity.P2))
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert d.expires_at(now) == now + timedelta(hours=24)
    assert d.option().option_id == "credit"
    assert d.option("coupon").amount_minor == 8000
    with pytest.raises(KeyError):
        d.option("cash")
    no_choice = decide(_policy(offers={"customer_choice": False, "expires_after_hours": 24}), _req(MID, Severity.P2))
    assert not no_choice.customer_may_choose
    assert len(no_choice.options) == 3


def test_every_decision_names_the_policy_version_and_its_result() -> None:
    d = decide(POLICY, _req(MID, Severity.P4))
    assert d.reasons[0] == f"policy.version: {POLICY.version}"
    assert d.reasons[-1] == "result: no compensation"
    assert d.policy_version == POLICY.version


# --- surveys and remedy arithmetic ------------------------------------------------------------


@pytest.mark.parametrize(
    ("csat", "nps", "low"),
    [
        (1, None, True),
        (2, None, True),
        (3, None, False),
        (None, 6, True),
        (None, 7, False),
        (5, 0, True),
        (None, None, False),
    ],
)
def test_low_survey_is_low_csat_or_detractor(csat: int | None, nps: int | None, low: bool) -> None:
    assert is_low_survey(POLICY, csat, nps) is low


def test_budget_month_is_in_the_business_time_zone() -> None:
    # 17:00 UTC on 31 October is already 1 November in Shanghai.
    assert POLICY.budgets.month_of(datetime(2026, 10, 31, 17, 0, tzinfo=UTC)) == "2026-11"
    assert POLICY.budgets.month_of(datetime(2026, 10, 31, 15, 0, tzinfo=UTC)) == "2026-10"


def test_remedy_values_scaling_and_fitting() -> None:
    coupon = Remedy(option_id="c", kind="coupon_percent", percent=20, amount_minor=10000)
    assert remedy_value_minor(coupon, POLICY) == 10000  # a percent coupon counts at its ceiling
    grown = scale_remedy(coupon, 15, POLICY)
    assert (grown.amount_minor, grown.percent) == (11500, 20)
    assert fit_remedy(coupon, 5050, POLICY, MID).amount_minor == 5000  # whole yuan
    assert fit_remedy(coupon, 99, POLICY, MID) is None
    visit = Remedy(option_id="v", kind="free_service", amount_minor=8000, description="visit")
    assert scale_remedy(visit, 50, POLICY) == visit
    assert fit_remedy(visit, 7999, POLICY, MID) is None
    assert fit_remedy(visit, 8000, POLICY, MID) == visit
    points = Remedy(option_id="p", kind="points", points=1000)
    assert remedy_value_minor(points, POLICY) == 1000
    assert fit_remedy(points, 550, POLICY, MID).points == 500
