"""Survey maths on known inputs: CSAT%, NPS, CES, weighted satisfaction, levels, low scores, recovery."""

from datetime import UTC, datetime, timedelta

import pytest

from services.loyalty.policy import default_policy
from services.loyalty.surveys import (
    AnswerRejection,
    NpsGroup,
    Scores,
    answer_rejection,
    ces_average,
    csat_percent,
    customer_level,
    figures,
    is_low_score,
    new_token,
    nps,
    nps_group,
    recovered,
    recovered_share,
    satisfaction_level,
    satisfaction_score,
    score_errors,
    token_digest,
    weighted_satisfaction,
)

RULES = default_policy().surveys
ALL_FIVE = {"resolution_efficiency": 5, "attitude": 5, "clarity": 5, "resolution_rate": 5, "empathy": 5}


@pytest.mark.parametrize(
    ("values", "percent"),
    [
        ([5, 4, 3, 2, 1], 40.0),
        ([5, 5, 4, 4], 100.0),
        ([1, 2, 3], 0.0),
        ([4, None, 2, None], 50.0),  # skipped answers do not count
        ([], None),
        ([None], None),
    ],
)
def test_csat_percent(values: list, percent: float | None) -> None:
    assert csat_percent(values) == percent


@pytest.mark.parametrize(
    ("values", "score"),
    [
        ([10, 9, 8, 7, 6, 0], 0.0),  # 2 promoters, 2 detractors
        ([10, 10, 9, 5], 50.0),  # 75% - 25%
        ([10, 9], 100.0),
        ([0, 6, 3], -100.0),
        ([7, 8], 0.0),  # passives only
        ([9, 8, 6, 10, 2], 0.0),  # 2 promoters, 1 passive, 2 detractors: 40% - 40%
        ([10, 9, 9, 8, 1], 40.0),  # 60% - 20%
        ([], None),
    ],
)
def test_nps(values: list, score: float | None) -> None:
    assert nps(values, RULES) == score


@pytest.mark.parametrize(
    ("score", "group"),
    [(0, NpsGroup.DETRACTOR), (6, NpsGroup.DETRACTOR), (7, NpsGroup.PASSIVE), (8, NpsGroup.PASSIVE),
     (9, NpsGroup.PROMOTER), (10, NpsGroup.PROMOTER)],
)  # fmt: skip
def test_nps_groups(score: int, group: NpsGroup) -> None:
    assert nps_group(score, RULES) is group


@pytest.mark.parametrize(("values", "average"), [([1, 2, 3, 4], 2.5), ([7], 7.0), ([2, None, 4], 3.0), ([], None)])
def test_ces_average(values: list, average: float | None) -> None:
    assert ces_average(values) == average


@pytest.mark.parametrize(
    ("dimensions", "expected"),
    [
        (ALL_FIVE, 5.0),
        ({**ALL_FIVE, "resolution_efficiency": 1}, 5 - 4 * 0.29),  # 3.84
        ({"resolution_efficiency": 4, "attitude": 5, "clarity": 3, "resolution_rate": 4, "empathy": 2}, 3.74),
        ({"attitude": 4, "empathy": 2}, (0.22 * 4 + 0.15 * 2) / 0.37),  # skipped ones spread over the rest
        ({}, None),
    ],
)
def test_weighted_satisfaction(dimensions: dict, expected: float | None) -> None:
    result = weighted_satisfaction(dimensions, RULES.weights)
    assert result == (None if expected is None else pytest.approx(expected))


def test_satisfaction_score_falls_back_to_csat() -> None:
    assert satisfaction_score(Scores(csat=4), RULES) == 4.0
    assert satisfaction_score(Scores(csat=1, dimensions=ALL_FIVE), RULES) == pytest.approx(5.0)
    assert satisfaction_score(Scores(nps=3), RULES) is None


@pytest.mark.parametrize(
    ("score", "level", "repurchase"),
    [
        (5.0, "loyal", 0.92),
        (4.6, "loyal", 0.92),  # >= 4.6 repurchase at 92%
        (4.59, "satisfied", 0.78),
        (4.3, "satisfied", 0.78),  # 4.3-4.5 at 78%
        (4.29, "neutral", None),
        (2.9, "dissatisfied", None),
        (1.0, "dissatisfied", None),
    ],
)
def test_satisfaction_levels(score: float, level: str, repurchase: float | None) -> None:
    found = satisfaction_level(score, RULES.levels)
    assert found is not None
    assert (found.name, found.repurchase_rate) == (level, repurchase)
    assert satisfaction_level(None, RULES.levels) is None


def test_customer_level_uses_most_recent_answers() -> None:
    recent = [Scores(csat=5), Scores(csat=5), Scores(csat=4), Scores(csat=5), Scores(csat=4), Scores(csat=1)]
    average, level = customer_level(recent, RULES)  # the oldest (1) is outside the last 5
    assert average == pytest.approx(4.6)
    assert level is not None and level.name == "loyal"
    assert customer_level([], RULES) == (None, None)


@pytest.mark.parametrize(
    ("scores", "low"),
    [
        (Scores(csat=2), True),
        (Scores(csat=1, nps=10), True),
        (Scores(csat=3), False),
        (Scores(nps=6), True),  # detractor
        (Scores(csat=5, nps=6), True),
        (Scores(nps=7), False),
        (Scores(ces=7), False),
    ],
)
def test_low_score_rule(scores: Scores, low: bool) -> None:
    assert is_low_score(scores, RULES) is low


def test_figures_over_known_answers() -> None:
    answers = [
        Scores(csat=5, nps=10, ces=2),
        Scores(csat=4, nps=9, ces=3),
        Scores(csat=3, nps=7, ces=4),
        Scores(csat=1, nps=2, ces=7),
    ]
    result = figures(answers, RULES)
    assert result.responses == 4
    assert result.csat_percent == 50.0
    assert result.nps == 25.0  # 50% promoters - 25% detractors
    assert result.ces_average == 4.0
    assert result.satisfaction == 3.25  # CSAT stands in when no dimension was answered
    empty = figures([], RULES)
    assert (empty.responses, empty.csat_percent, empty.nps, empty.ces_average) == (0, None, None, None)


def test_figures_round_repeating_decimals() -> None:
    result = figures([Scores(csat=5), Scores(csat=5), Scores(csat=1)], RULES)
    assert result.csat_percent == 66.7


@pytest.mark.parametrize(
    ("scores", "errors"),
    [
        (Scores(csat=5, nps=10, ces=7, dimensions=ALL_FIVE), []),
        (Scores(csat=0), [("csat", "must be between 1 and 5")]),
        (Scores(csat=6), [("csat", "must be between 1 and 5")]),
        (Scores(nps=11), [("nps", "must be between 0 and 10")]),
        (Scores(nps=-1), [("nps", "must be between 0 and 10")]),
        (Scores(ces=8), [("ces", "must be between 1 and 7")]),
        (Scores(csat=3, dimensions={"empathy": 6}), [("dimensions.empathy", "must be between 1 and 5")]),
        (Scores(csat=3, dimensions={"speed": 3}), [("dimensions.speed", "unknown dimension")]),
        (Scores(), [("csat", "an answer needs at least one score")]),
    ],
)
def test_score_range_checks(scores: Scores, errors: list) -> None:
    found = score_errors(scores, RULES)
    assert [field for field, _ in found] == [field for field, _ in errors]
    for (_, message), (_, expected) in zip(found, errors, strict=True):
        assert message.startswith(expected)


def test_answer_rejection() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert answer_rejection(None, now + timedelta(seconds=1), now) is None
    assert answer_rejection(None, now, now) is AnswerRejection.EXPIRED
    assert answer_rejection(now, now + timedelta(days=1), now) is AnswerRejection.ALREADY_ANSWERED


@pytest.mark.parametrize(
    ("original", "follow_up", "worked"),
    [
        (Scores(csat=2), Scores(csat=4), True),
        (Scores(csat=2), Scores(csat=2), False),  # still low
        (Scores(csat=1), Scores(csat=2), False),  # better but still low
        (Scores(csat=2, nps=3), Scores(csat=4, nps=5), False),  # still a detractor
        (Scores(nps=4), Scores(nps=8), True),
        (Scores(csat=2), Scores(nps=9), False),  # nothing comparable
    ],
)
def test_recovered(original: Scores, follow_up: Scores, worked: bool) -> None:
    assert recovered(original, follow_up, RULES) is worked


def test_recovered_share() -> None:
    pairs = [
        (Scores(csat=2), Scores(csat=4)),
        (Scores(csat=1), Scores(csat=5)),
        (Scores(csat=2), Scores(csat=1)),
        (Scores(nps=3), Scores(nps=9)),
    ]
    assert recovered_share(pairs, RULES) == 75.0
    assert recovered_share([], RULES) is None


def test_tokens_are_random_and_stored_as_digests() -> None:
    first, second = new_token(), new_token()
    assert first != second and len(first) >= 40
    assert token_digest(first) == token_digest(first)
    assert token_digest(first) != first and len(token_digest(first)) == 64
