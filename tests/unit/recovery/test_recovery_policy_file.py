"""The recovery policy file: the shipped one is valid, a bad one is refused naming the field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from services.recovery.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy, parse_policy
from shared.events.vocabulary import CustomerTier, Department, Role, Severity

RAW = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))


def _broken(path: str, value: object) -> dict:
    """The shipped policy with the dotted `path` set to `value` (None deletes the key)."""
    data = copy.deepcopy(RAW)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


def test_shipped_policy_is_valid_and_versioned() -> None:
    policy = load_policy()
    assert policy.version
    assert policy.currency == "CNY"
    for tier in CustomerTier:
        for severity in Severity:
            cell = policy.matrix.cell(tier, severity)
            assert cell.default_id in [None, *[o.id for o in cell.options]]


def test_shipped_figures_follow_the_domain() -> None:
    policy = load_policy()
    # DOMAIN.md: a mass outage earned every user 200 yuan; high value gets more.
    incident = policy.incidents.remedies
    assert incident.for_tier(CustomerTier.POTENTIAL).options[0].amount_minor == 20000
    assert incident.for_tier(CustomerTier.HIGH_VALUE).options[0].amount_minor > 20000
    # Recover within 24 hours: an offer lapses to its default after a day.
    assert policy.offers.expires_after_hours == 24
    # The responsibility matrix rises with seniority.
    limits = [policy.approvals.limit(r) for r in (Role.AGENT, Role.SUPERVISOR, Role.MANAGER)]
    assert limits == sorted(limits)
    assert policy.budgets.monthly_for(Department.BILLING.value) == policy.budgets.monthly_minor[Department.BILLING]
    assert policy.budgets.monthly_for("no_such_department") == policy.budgets.default_monthly_minor
    assert policy.budgets.monthly_for(None) == policy.budgets.default_monthly_minor


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("version", None, "version"),
        ("version", "", "version"),
        ("currency", "cny", "currency"),
        ("matrix.mid_value.P3", None, "matrix.mid_value.P3"),
        ("matrix.potential", None, "matrix.potential"),
        ("matrix.high_value.P1.default", "cash", "matrix.high_value.P1"),
        ("matrix.high_value.P2.default", None, "matrix.high_value.P2"),
        ("matrix.high_value.P1.options.0.amount_minor", -100, "matrix.high_value.P1.options.0.amount_minor"),
        ("matrix.high_value.P1.options.0.kind", "cash", "matrix.high_value.P1.options.0.kind"),
        ("matrix.high_value.P1.options.0.amount_minor", 0, "matrix.high_value.P1.options.0"),
        ("matrix.high_value.P1.options.2.points", 0, "matrix.high_value.P1.options.2"),
        ("matrix.high_value.P3.options.0.percent", 0, "matrix.high_value.P3.options.0"),
        ("matrix.high_value.P3.options.0.percent", 150, "matrix.high_value.P3.options.0.percent"),
        ("matrix.high_value.P1.options.1.id", "credit", "matrix.high_value.P1"),
        ("matrix.high_value.P1.options.1.id", "Bad Id", "matrix.high_value.P1.options.1.id"),
        ("matrix.high_value.P1.options.0.colour", "red", "matrix.high_value.P1.options.0.colour"),
        ("approvals.limits_minor.manager", None, "approvals.limits_minor"),
        ("approvals.limits_minor.manager", 100, "approvals.limits_minor"),
        ("approvals.limits_minor.director", 100, "approvals.limits_minor.director"),
        ("caps.potential.max_count", 0, "caps.potential.max_count"),
        ("caps.mid_value", None, "caps.mid_value"),
        ("budgets.monthly_minor.marketing", 100, "budgets.monthly_minor.marketing"),
        ("budgets.default_monthly_minor", -1, "budgets.default_monthly_minor"),
        ("budgets.timezone", "Mars/Olympus", "budgets.timezone"),
        ("offers.expires_after_hours", 0, "offers.expires_after_hours"),
        ("low_survey.csat_max", 6, "low_survey.csat_max"),
        ("sla_breach.clocks", ["lunch"], "sla_breach.clocks.0"),
        ("incidents.remedies.high_value", None, "incidents.remedies.high_value"),
        ("modifiers.repeat_complaints.threshold", 0, "modifiers.repeat_complaints.threshold"),
        ("points.value_minor_per_100_points", 0, "points.value_minor_per_100_points"),
        ("surprise", 1, "surprise"),
    ],
)
def test_bad_policy_is_refused_naming_the_field(path: str, value: object, named: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(_broken(path, value), "test.yaml")
    assert f"  {named}" in str(err.value)
    assert "test.yaml" in str(err.value)


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(PolicyError, match="mapping"):
        parse_policy(["version", "1"])


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot be read"):
        load_policy(tmp_path / "absent.yaml")


def test_bad_yaml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("version: [unclosed\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)
