"""Care rules: follow-ups on days 3 and 7 after a resolution, and churn signals. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.loyalty.policy import ChurnRules
from shared.events.vocabulary import CustomerTier


class ChurnSignal(StrEnum):
    """Why a customer may leave."""

    RISING_COMPLAINT_RATE = "rising_complaint_rate"
    LOW_SURVEY_SCORE = "low_survey_score"
    SLA_BREACH_HIGH_VALUE = "sla_breach_high_value"


@dataclass(frozen=True)
class Followup:
    """One scheduled care follow-up."""

    day: int
    due_at: datetime


@dataclass(frozen=True)
class ChurnInputs:
    """What loyalty knows about a customer when an event arrives."""

    now: datetime
    complaint_times: tuple[datetime, ...] = ()
    low_survey_score: bool = False
    sla_breached: bool = False
    tier: CustomerTier = CustomerTier.POTENTIAL


def followup_schedule(resolved_at: datetime, days: Iterable[int]) -> list[Followup]:
    """Follow-ups `days` days after the resolution (3 and 7 by default), earliest first."""
    if resolved_at.tzinfo is None:
        raise ValueError("resolved_at must be timezone-aware")
    return [Followup(day, resolved_at + timedelta(days=day)) for day in sorted(days)]


def cancels_followups(complained_at: datetime, resolved_at: datetime) -> bool:
    """A new complaint after the resolution cancels its pending follow-ups (care failed; the case owns it)."""
    return complained_at >= resolved_at


def rising_complaint_rate(complaint_times: Iterable[datetime], now: datetime, rules: ChurnRules) -> bool:
    """More complaints in the recent window than in the one before, and at least the minimum."""
    window = timedelta(days=rules.complaint_window_days)
    recent = previous = 0
    for moment in complaint_times:
        age = now - moment
        if timedelta(0) <= age < window:
            recent += 1
        elif window <= age < 2 * window:
            previous += 1
    return recent >= rules.min_recent_complaints and recent > previous


def churn_signals(inputs: ChurnInputs, rules: ChurnRules) -> list[ChurnSignal]:
    """The churn signals present, in a stable order (empty when none)."""
    signals = []
    if rising_complaint_rate(inputs.complaint_times, inputs.now, rules):
        signals.append(ChurnSignal.RISING_COMPLAINT_RATE)
    if rules.low_score and inputs.low_survey_score:
        signals.append(ChurnSignal.LOW_SURVEY_SCORE)
    if inputs.sla_breached and inputs.tier in rules.sla_breach_tiers:
        signals.append(ChurnSignal.SLA_BREACH_HIGH_VALUE)
    return signals


def churn_alert_due(last_alert_at: datetime | None, now: datetime, rules: ChurnRules) -> bool:
    """At most one churn alert per customer per cooldown, so outreach is not spammed."""
    return last_alert_at is None or now - last_alert_at >= timedelta(days=rules.cooldown_days)
