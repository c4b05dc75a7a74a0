"""The packaged policy follows DOMAIN.md, and a bad policy file is refused with the field named."""

import copy
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from services.loyalty.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy, parse_policy
from shared.events.vocabulary import CustomerTier

RAW = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))


def test_packaged_policy_carries_domain_figures() -> None:
    policy = load_policy()
    assert policy.version
    assert policy.tiers.high_value.min_annual_spend_minor == 50_000_01  # > 50,000 yuan
    assert policy.tiers.high_value.min_repeat_purchases == 3
    assert policy.tiers.mid_value.min_annual_spend_minor == 10_000_00
    assert policy.tiers.mid_value.min_repeat_purchases == 1
    assert policy.points.earn_percent[CustomerTier.MID_VALUE] == 200
    assert policy.points.exchange_bonus_percent[CustomerTier.HIGH_VALUE] == 20
    assert policy.referral.referrer_coupon_minor == 100_00
    assert policy.referral.new_customer_coupon_minor == 50_00
    assert policy.loyalty_award.consecutive_years == 5
    assert policy.surveys.weights == {
        "resolution_efficiency": 0.29,
        "attitude": 0.22,
        "clarity": 0.18,
        "resolution_rate": 0.16,
        "empathy": 0.15,
    }
    assert policy.care.followup_days == [3, 7]


def _with(path: tuple[str, ...], value: object) -> dict:
    data = copy.deepcopy(RAW)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("version",), _DELETE, "version"),
        (("tiers", "high_value", "min_annual_spend_minor"), -1, "tiers.high_value.min_annual_spend_minor"),
        (("tiers", "high_value", "min_annual_spend_minor"), 100, "high_value.min_annual_spend_minor must be above"),
        (("points", "earn_percent"), {"high_value": 100}, "earn_percent must list every tier"),
        (("points", "expire_after_days"), 0, "points.expire_after_days"),
        (("surveys", "weights", "empathy"), 0.5, "weights must sum to 1.0"),
        (("surveys", "weights", "speed"), 0.0, "unknown dimension"),
        (("surveys", "ces_max"), 10, "surveys.ces_max"),
        (("care", "followup_days"), [3, 3], "followup_days must be distinct"),
        (("points", "typo_field"), 1, "points.typo_field"),
        (("benefits", "mid_value", 0, "cadence"), "weekly", "benefits.mid_value.0.cadence"),
        (("timezone",), "Mars/Olympus_Mons", "unknown time zone"),
        (("surveys", "recovery_followup_after_hours"), -1, "surveys.recovery_followup_after_hours"),
    ],
)
def test_bad_policy_names_the_field(path: tuple, value: object, named: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(_with(path, value), "test-policy")
    assert named in str(err.value)
    assert "test-policy" in str(err.value)


def test_policy_not_a_mapping_is_refused() -> None:
    with pytest.raises(PolicyError, match="mapping"):
        parse_policy(["version", 1])


def test_unreadable_and_invalid_yaml_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: [unclosed", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(broken)


def test_policy_file_can_be_overridden(tmp_path: Path) -> None:
    custom = tmp_path / "policy.yaml"
    custom.write_text(yaml.safe_dump(_with(("points", "expire_after_days"), 365)), encoding="utf-8")
    assert load_policy(custom).points.expire_after_days == 365


def test_calendar_rules_use_the_local_date() -> None:
    policy = load_policy()
    # 17:00 UTC on 31 December is already 1 January in Shanghai: a purchase then counts for the new year.
    assert policy.local_date(datetime(2026, 12, 31, 17, 0, tzinfo=UTC)) == date(2027, 1, 1)
    assert policy.local_date(datetime(2026, 12, 31, 15, 59, tzinfo=UTC)) == date(2026, 12, 31)
    with pytest.raises(ValueError, match="timezone-aware"):
        policy.local_date(datetime(2026, 12, 31))  # naive on purpose
