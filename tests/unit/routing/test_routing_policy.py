"""The routing policy file: defaults from DOMAIN.md, and clear errors naming the bad field."""

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.routing.policy import (
    DEFAULT_POLICY_PATH,
    PolicyError,
    RoutingPolicy,
    load_policy,
    parse_policy,
)
from shared.events.vocabulary import Department, Severity
from shared.policy_file import parse_duration


@pytest.fixture
def raw() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))


def test_defaults_follow_the_domain_brief(policy: RoutingPolicy) -> None:
    assert policy.version
    assert policy.targets(Severity.P2).first_response == timedelta(hours=2)
    assert policy.targets(Severity.P3).first_response == timedelta(hours=4)
    assert policy.targets(Severity.P1).first_response < timedelta(hours=2)
    assert policy.targets(Severity.P4).first_response > timedelta(hours=4)
    assert policy.complex.specialist_within == timedelta(hours=12)
    assert policy.green_channel.resolution_within == timedelta(hours=24)
    assert policy.green_channel.max_reassignments == 2
    assert policy.warning_share == 0.75
    assert [r.value for r in policy.ladder.levels] == ["agent", "supervisor", "manager"]


def test_every_department_has_a_queue_and_queues_run_24_7_by_default(policy: RoutingPolicy) -> None:
    assert {policy.queue_of(d) for d in Department} == {
        "product_support",
        "accounts_security",
        "billing",
        "logistics",
        "policy_desk",
    }
    assert all(policy.calendar_of(name) is None for name in policy.queues)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d 12h", timedelta(days=1, hours=12)),
        ("1h30m", timedelta(minutes=90)),
        (90, timedelta(seconds=90)),
    ],
)
def test_durations(text: Any, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "2 hours", "h", "-1h", True, None])
def test_bad_durations(bad: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        data = data[part]
    if value is _DELETE:
        del data[leaf]
    else:
        data[leaf] = value


_DELETE = object()

# (dotted path to change, new value, text the error must contain)
BAD_FILES = [
    ("version", _DELETE, "version: Field required"),
    ("tiers.P2.first_response", "soon", "tiers.P2.first_response"),
    ("tiers.P1", _DELETE, "missing tiers ['P1']"),
    ("tiers.P1.first_response", "5h", "first_response targets must not shrink"),
    ("tiers.P3.first_response", "3d", "first_response must not be longer than resolution"),
    ("warning_share", 1.5, "warning_share"),
    ("severity.category_base.other", _DELETE, "missing base tier for categories"),
    ("severity.category_base.product_usage", "P9", "severity.category_base.product_usage"),
    ("severity.urgency_cues.safety", {"at_least": "P1", "lift": 1}, "severity.urgency_cues.safety.lift"),
    ("queues.policy_desk.calendar", "nowhere", "queues.policy_desk.calendar: unknown calendar"),
    ("queues.billing", _DELETE, "no queue for departments ['billing']"),
    ("category_queues.other", "nowhere", "category_queues.other: unknown queue"),
    ("green_channel.queue", "fast_lane", "green_channel.queue: unknown queue"),
    ("calendars.cn_office.timezone", "Mars/Olympus", "unknown time zone"),
    ("calendars.cn_office.weekly", {"mon": ["18:00-09:00"]}, "must end after they start"),
    ("calendars.cn_office.weekly", {"mon": ["09:00-12:00", "11:00-13:00"]}, "overlap"),
    ("calendars.cn_office.weekly", {"funday": ["09:00-12:00"]}, "unknown weekday"),
    ("calendars.cn_office.weekly", {"mon": []}, "open at least one hour a week"),
    ("ladder.levels", ["agent", "agent"], "distinct roles"),
    ("permissions.acknowledge", _DELETE, "missing actions ['acknowledge']"),
    ("permissions.acknowledge", "janitor", "permissions.acknowledge"),
    ("resolution_codes", [], "resolution_codes"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_FILES, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD_FILES])
def test_bad_policy_names_the_field(raw: dict[str, Any], path: str, value: Any, message: str) -> None:
    data = copy.deepcopy(raw)
    _set(data, path, value)
    with pytest.raises(PolicyError) as caught:
        parse_policy(data, "test.yaml")
    assert message in str(caught.value)
    assert "invalid routing policy test.yaml" in str(caught.value)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read routing policy"):
        load_policy(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("tiers: [unclosed", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(broken)


def test_a_queue_may_run_office_hours(raw: dict[str, Any], tmp_path: Path) -> None:
    raw["queues"]["policy_desk"]["calendar"] = "cn_office"
    path = tmp_path / "office.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    policy = load_policy(path)
    calendar = policy.calendar_of("policy_desk")
    assert calendar is not None and calendar.timezone == "Asia/Shanghai"
