"""Survey maths (DOMAIN.md): CSAT% = share of 4s and 5s, NPS = %promoters - %detractors, average CES,
weighted satisfaction from five dimensions, satisfaction levels, the low-score rule, the recovered
share, and one-time survey tokens. Pure functions, no I/O."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from services.loyalty.policy import DIMENSIONS, SatisfactionLevel, SurveyRules

CSAT_RANGE = (1, 5)
NPS_RANGE = (0, 10)
DIMENSION_RANGE = (1, 5)


@dataclass(frozen=True)
class Scores:
    """One survey answer's scores; any of them may be skipped."""

    csat: int | None = None
    nps: int | None = None
    ces: int | None = None
    dimensions: Mapping[str, int] = field(default_factory=dict)


class NpsGroup(StrEnum):
    """Where an NPS score falls."""

    PROMOTER = "promoter"
    PASSIVE = "passive"
    DETRACTOR = "detractor"


class AnswerRejection(StrEnum):
    """Why a survey answer cannot be accepted."""

    ALREADY_ANSWERED = "already_answered"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Figures:
    """Satisfaction figures over a set of answers (None where no answer gave the score)."""

    responses: int
    csat_percent: float | None
    nps: float | None
    ces_average: float | None
    satisfaction: float | None


def _present(values: Iterable[int | None]) -> list[int]:
    return [v for v in values if v is not None]


def csat_percent(values: Iterable[int | None], satisfied_at_least: int = 4) -> float | None:
    """Share (0-100) of CSAT answers at 4 or 5."""
    scores = _present(values)
    if not scores:
        return None
    return 100.0 * sum(1 for v in scores if v >= satisfied_at_least) / len(scores)


def nps_group(score: int, rules: SurveyRules) -> NpsGroup:
    """Promoters 9-10, passives 7-8, detractors 0-6 (by default)."""
    if score >= rules.promoter_nps_at_least:
        return NpsGroup.PROMOTER
    if score <= rules.detractor_nps_at_most:
        return NpsGroup.DETRACTOR
    return NpsGroup.PASSIVE


def nps(values: Iterable[int | None], rules: SurveyRules) -> float | None:
    """%promoters - %detractors, from -100 to +100."""
    scores = _present(values)
    if not scores:
        return None
    groups = [nps_group(v, rules) for v in scores]
    promoters = groups.count(NpsGroup.PROMOTER)
    detractors = groups.count(NpsGroup.DETRACTOR)
    return 100.0 * (promoters - detractors) / len(scores)


def ces_average(values: Iterable[int | None]) -> float | None:
    """Average customer effort; lower is better."""
    scores = _present(values)
    return sum(scores) / len(scores) if scores else None


def weighted_satisfaction(dimensions: Mapping[str, int], weights: Mapping[str, float]) -> float | None:
    """Weighted mean (1-5) of the dimensions answered; weights of skipped ones are spread over the rest."""
    answered = {k: v for k, v in dimensions.items() if k in weights and weights[k] > 0}
    total = sum(weights[k] for k in answered)
    if not answered or total == 0:
        return None
    return sum(weights[k] * v for k, v in answered.items()) / total


def satisfaction_score(scores: Scores, rules: SurveyRules) -> float | None:
    """One answer's satisfaction (1-5): the weighted dimensions, or CSAT when none were answered."""
    weighted = weighted_satisfaction(scores.dimensions, rules.weights)
    if weighted is not None:
        return weighted
    return float(scores.csat) if scores.csat is not None else None


def satisfaction_level(score: float | None, levels: Sequence[SatisfactionLevel]) -> SatisfactionLevel | None:
    """The highest level whose minimum the score reaches (>= 4.6 loyal, 4.3-4.6 satisfied, ...)."""
    if score is None:
        return None
    for level in levels:
        # Round first so 4.5999999 from float weights does not fall a level.
        if round(score, 6) >= level.min_score:
            return level
    return levels[-1]


def customer_level(recent: Sequence[Scores], rules: SurveyRules) -> tuple[float | None, SatisfactionLevel | None]:
    """A customer's average satisfaction over their most recent answers (newest first), and its level."""
    window = [satisfaction_score(s, rules) for s in recent[: rules.level_recent_answers]]
    values = [v for v in window if v is not None]
    average = sum(values) / len(values) if values else None
    return average, satisfaction_level(average, rules.levels)


def is_low_score(scores: Scores, rules: SurveyRules) -> bool:
    """CSAT <= 2 or an NPS detractor (by default)."""
    low_csat = scores.csat is not None and scores.csat <= rules.low_score_csat_at_most
    detractor = scores.nps is not None and nps_group(scores.nps, rules) is NpsGroup.DETRACTOR
    return low_csat or detractor


def figures(answers: Sequence[Scores], rules: SurveyRules, digits: int = 1) -> Figures:
    """CSAT%, NPS, average CES and average weighted satisfaction over `answers`, rounded."""

    def rounded(value: float | None, places: int = digits) -> float | None:
        return None if value is None else round(value, places)

    sat = _present_float(satisfaction_score(a, rules) for a in answers)
    return Figures(
        responses=len(answers),
        csat_percent=rounded(csat_percent((a.csat for a in answers), rules.satisfied_csat_at_least)),
        nps=rounded(nps((a.nps for a in answers), rules)),
        ces_average=rounded(ces_average(a.ces for a in answers), 2),
        satisfaction=rounded(sum(sat) / len(sat) if sat else None, 2),
    )


def _present_float(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def score_errors(scores: Scores, rules: SurveyRules) -> list[tuple[str, str]]:
    """Range problems as (field, message); empty when the scores are valid."""
    errors: list[tuple[str, str]] = []

    def check(name: str, value: int | None, low: int, high: int) -> None:
        if value is not None and not low <= value <= high:
            errors.append((name, f"must be between {low} and {high}"))

    check("csat", scores.csat, *CSAT_RANGE)
    check("nps", scores.nps, *NPS_RANGE)
    check("ces", scores.ces, 1, rules.ces_max)
    for name, value in scores.dimensions.items():
        if name not in DIMENSIONS:
            errors.append((f"dimensions.{name}", f"unknown dimension; known: {', '.join(DIMENSIONS)}"))
        else:
            check(f"dimensions.{name}", value, *DIMENSION_RANGE)
    if scores.csat is None and scores.nps is None and scores.ces is None and not scores.dimensions:
        errors.append(("csat", "an answer needs at least one score"))
    return errors


def answer_rejection(answered_at: datetime | None, expires_at: datetime, now: datetime) -> AnswerRejection | None:
    """Why a survey cannot be answered now (used once already, or expired), or None."""
    if answered_at is not None:
        return AnswerRejection.ALREADY_ANSWERED
    if now >= expires_at:
        return AnswerRejection.EXPIRED
    return None


def recovered(original: Scores, follow_up: Scores, rules: SurveyRules) -> bool:
    """A recovery worked when the follow-up is no longer a low score and improved on the original."""
    if is_low_score(follow_up, rules):
        return False
    before = satisfaction_score(original, rules)
    after = satisfaction_score(follow_up, rules)
    if before is not None and after is not None:
        return after > before
    # Only NPS answered: compare those.
    return original.nps is not None and follow_up.nps is not None and follow_up.nps > original.nps


def recovered_share(pairs: Iterable[tuple[Scores, Scores]], rules: SurveyRules) -> float | None:
    """Percent of answered follow-up surveys whose recovery worked (None when there are none)."""
    outcomes = [recovered(original, follow_up, rules) for original, follow_up in pairs]
    return 100.0 * sum(outcomes) / len(outcomes) if outcomes else None


def new_token() -> str:
    """A fresh one-time survey token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What is stored instead of the token, so a database leak does not expose live tokens."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
