"""Intake policy: loading with clear errors, text similarity, and the follow-up decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.intake.policy import (
    FollowUpRule,
    NewMessage,
    OpenComplaint,
    PolicyError,
    find_follow_up,
    load_policy,
    parse_policy,
    text_similarity,
)
from shared.policy_file import parse_duration

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RULE = FollowUpRule()


def _open(
    complaint_id: str,
    text: str,
    *,
    order: str | None = None,
    hours_ago: float = 1,
    emails: frozenset[str] = frozenset(),
) -> OpenComplaint:
    return OpenComplaint(complaint_id, text, order, NOW - timedelta(hours=hours_ago), emails)


def _message(text: str, *, order: str | None = None, replies_to: frozenset[str] = frozenset()) -> NewMessage:
    return NewMessage(text, order, NOW, replies_to)


def test_packaged_policy_loads() -> None:
    policy = load_policy()
    assert policy.version
    assert policy.follow_up.window == timedelta(hours=72)
    assert policy.repeat_contacts.window == timedelta(days=30)
    assert policy.normalization.default_country == "CN"


@pytest.mark.parametrize(
    ("text", "seconds"), [("72h", 259200), ("30d", 2592000), ("1d 12h", 129600), ("90m", 5400), (45, 45)]
)
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "version: Field required"),
        ({"version": "x", "follow_up": {"window": "soon"}}, "follow_up.window"),
        ({"version": "x", "follow_up": {"min_text_similarity": 2}}, "follow_up.min_text_similarity"),
        ({"version": "x", "normalization": {"default_country": "ZZ"}}, "normalization.default_country"),
        ({"version": "x", "normalization": {"order_ref_patterns": ["no group"]}}, "normalization.order_ref_patterns"),
        ({"version": "x", "surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_bad_policy_names_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError) as exc:
        parse_policy(data, "test policy")
    assert "test policy is invalid" in str(exc.value) and message in str(exc.value)


def test_unreadable_policy_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read intake policy"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)


def test_similarity_is_one_for_the_same_text_and_zero_for_unrelated() -> None:
    assert text_similarity("洗衣机坏了", "洗衣机坏了") == 1.0
    assert text_similarity("The laptop restarts", "My account was hacked") == 0.0
    assert text_similarity("", "anything") == 0.0
    assert 0.4 < text_similarity("快递三天没更新了", "快递还没到，物流三天没更新") < 1


def test_same_order_is_a_follow_up() -> None:
    match = find_follow_up([_open("c1", "Laptop broken", order="2024")], _message("Something else", order="2024"), RULE)
    assert match is not None and match.complaint_id == "c1" and match.reason == "same order 2024"


def test_email_answering_the_complaint_is_a_follow_up() -> None:
    candidate = _open("c1", "Refund missing", emails=frozenset({"m1@mail"}))
    match = find_follow_up([candidate], _message("Any news?", replies_to=frozenset({"m1@mail"})), RULE)
    assert match is not None and match.reason == "answers one of its e-mails"


def test_close_text_is_a_follow_up_and_says_how_close() -> None:
    match = find_follow_up(
        [_open("c1", "The app crashes when I open orders")], _message("The app crashes when I try to pay"), RULE
    )
    assert match is not None and match.reason.startswith("text similarity 0.")


def test_unrelated_message_is_new() -> None:
    assert find_follow_up([_open("c1", "The courier was rude")], _message("My points expired"), RULE) is None


def test_outside_the_window_is_new() -> None:
    old = _open("c1", "Laptop broken", order="2024", hours_ago=73)
    assert find_follow_up([old], _message("Laptop broken", order="2024"), RULE) is None


def test_the_most_recently_active_match_wins() -> None:
    older = _open("old", "Laptop broken", order="2024", hours_ago=10)
    newer = _open("new", "Laptop broken", order="2024", hours_ago=2)
    assert find_follow_up([older, newer], _message("x", order="2024"), RULE).complaint_id == "new"  # type: ignore[union-attr]


def test_rules_can_be_switched_off() -> None:
    rule = FollowUpRule(same_order=False, email_thread=False, min_text_similarity=1.0)
    candidate = _open("c1", "Laptop broken", order="2024", emails=frozenset({"m1"}))
    assert (
        find_follow_up([candidate], _message("Laptop is broken", order="2024", replies_to=frozenset({"m1"})), rule)
        is None
    )
