"""Care follow-ups on days 3 and 7, and churn signals."""

from datetime import UTC, datetime, timedelta

import pytest

from services.loyalty.care import (
    ChurnInputs,
    ChurnSignal,
    Followup,
    cancels_followups,
    churn_alert_due,
    churn_signals,
    followup_schedule,
    rising_complaint_rate,
)
from services.loyalty.policy import default_policy
from shared.events.vocabulary import CustomerTier

CARE = default_policy().care
CHURN = CARE.churn
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def days_ago(*days: int) -> tuple[datetime, ...]:
    return tuple(NOW - timedelta(days=d) for d in days)


def test_followups_on_days_3_and_7() -> None:
    resolved = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
    assert followup_schedule(resolved, CARE.followup_days) == [
        Followup(3, datetime(2026, 5, 4, 9, 30, tzinfo=UTC)),
        Followup(7, datetime(2026, 5, 8, 9, 30, tzinfo=UTC)),
    ]
    assert [f.day for f in followup_schedule(resolved, [7, 3])] == [3, 7]
    with pytest.raises(ValueError, match="timezone-aware"):
        followup_schedule(datetime(2026, 5, 1), [3])  # naive on purpose


def test_a_new_complaint_cancels_followups() -> None:
    assert cancels_followups(NOW, NOW - timedelta(days=1))
    assert not cancels_followups(NOW - timedelta(days=2), NOW - timedelta(days=1))


@pytest.mark.parametrize(
    ("ages", "rising"),
    [
        ((), False),
        ((5,), False),  # one complaint is below the minimum
        ((5, 40), True),  # 2 recent, 0 before
        ((5, 40, 100), True),  # 2 recent, 1 before
        ((5, 40, 100, 120), False),  # 2 recent, 2 before: not rising
        ((5, 40, 200), True),  # older than two windows is ignored
    ],
)
def test_rising_complaint_rate(ages: tuple[int, ...], rising: bool) -> None:
    assert rising_complaint_rate(days_ago(*ages), NOW, CHURN) is rising


@pytest.mark.parametrize(
    ("inputs", "signals"),
    [
        (ChurnInputs(NOW), []),
        (ChurnInputs(NOW, complaint_times=days_ago(1, 2)), [ChurnSignal.RISING_COMPLAINT_RATE]),
        (ChurnInputs(NOW, low_survey_score=True), [ChurnSignal.LOW_SURVEY_SCORE]),
        (ChurnInputs(NOW, sla_breached=True, tier=CustomerTier.HIGH_VALUE), [ChurnSignal.SLA_BREACH_HIGH_VALUE]),
        (ChurnInputs(NOW, sla_breached=True, tier=CustomerTier.MID_VALUE), []),  # only high value by default
        (
            ChurnInputs(NOW, days_ago(1, 2), True, True, CustomerTier.HIGH_VALUE),
            [ChurnSignal.RISING_COMPLAINT_RATE, ChurnSignal.LOW_SURVEY_SCORE, ChurnSignal.SLA_BREACH_HIGH_VALUE],
        ),
    ],
)
def test_churn_signals(inputs: ChurnInputs, signals: list[ChurnSignal]) -> None:
    assert churn_signals(inputs, CHURN) == signals


def test_low_score_signal_can_be_switched_off() -> None:
    rules = CHURN.model_copy(update={"low_score": False})
    assert churn_signals(ChurnInputs(NOW, low_survey_score=True), rules) == []


def test_churn_alert_cooldown() -> None:
    assert churn_alert_due(None, NOW, CHURN)
    assert not churn_alert_due(NOW - timedelta(days=29), NOW, CHURN)
    assert churn_alert_due(NOW - timedelta(days=30), NOW, CHURN)
