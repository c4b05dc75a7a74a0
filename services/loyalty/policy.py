"""Loyalty policy: the versioned YAML file of business figures, validated by pydantic.

The pure rules live in points.py, tiers.py, benefits.py, surveys.py and care.py; they all take
a `LoyaltyPolicy` (or one of its sections) so every figure is data, not code.
"""

from __future__ import annotations

import math
import zoneinfo
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.events.vocabulary import CustomerTier
from shared.policy_file import describe_errors

DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yaml")
DIMENSIONS = ("resolution_efficiency", "attitude", "clarity", "resolution_rate", "empathy")

Minor = Annotated[int, Field(ge=0)]
Percent = Annotated[int, Field(ge=0, le=1000)]


class PolicyError(ValueError):
    """The policy file is missing, unreadable or invalid; the message names the bad field."""


class _Strict(BaseModel):
    """Unknown keys are typos: reject them rather than silently ignore them."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TierRule(_Strict):
    """Either threshold reaches the tier (DOMAIN.md: spend OR repeat purchases)."""

    min_annual_spend_minor: Minor
    min_repeat_purchases: int = Field(ge=1)


class TierRules(_Strict):
    """Thresholds of the two upper tiers; everyone else is potential."""

    high_value: TierRule
    mid_value: TierRule
    retain_years: int = Field(default=1, ge=0, le=10)

    @model_validator(mode="after")
    def _high_above_mid(self) -> TierRules:
        if self.high_value.min_annual_spend_minor <= self.mid_value.min_annual_spend_minor:
            raise ValueError("high_value.min_annual_spend_minor must be above mid_value.min_annual_spend_minor")
        if self.high_value.min_repeat_purchases <= self.mid_value.min_repeat_purchases:
            raise ValueError("high_value.min_repeat_purchases must be above mid_value.min_repeat_purchases")
        return self

    def rule(self, tier: CustomerTier) -> TierRule | None:
        """The thresholds of `tier` (None for potential, which has none)."""
        return {CustomerTier.HIGH_VALUE: self.high_value, CustomerTier.MID_VALUE: self.mid_value}.get(tier)


class Cadence(StrEnum):
    """How often a benefit is delivered."""

    STANDING = "standing"
    ONCE = "once"
    YEARLY = "yearly"
    BIRTHDAY_MONTH = "birthday_month"


class Benefit(_Strict):
    """One benefit of a tier, as data."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    cadence: Cadence
    description: str = ""
    coupon_minor: Minor = 0
    discount_percent: int = Field(default=0, ge=0, le=100)
    points: Minor = 0


def _all_tiers(value: dict[CustomerTier, object], name: str) -> None:
    missing = [t.value for t in CustomerTier if t not in value]
    if missing:
        raise ValueError(f"{name} must list every tier; missing: {', '.join(missing)}")


class PointsRules(_Strict):
    """Earning, redemption and expiry of points."""

    minor_per_point: int = Field(default=100, ge=1)
    earn_percent: dict[CustomerTier, Percent]
    redeem_minor_per_point: int = Field(default=1, ge=1)
    exchange_bonus_percent: dict[CustomerTier, Percent]
    min_redeem_points: int = Field(default=100, ge=1)
    expire_after_days: int = Field(default=730, ge=1)

    @model_validator(mode="after")
    def _every_tier(self) -> PointsRules:
        _all_tiers(self.earn_percent, "earn_percent")
        _all_tiers(self.exchange_bonus_percent, "exchange_bonus_percent")
        return self


class ReferralRules(_Strict):
    """What a successful referral gives each side."""

    referrer_coupon_minor: Minor = 10000
    new_customer_coupon_minor: Minor = 5000


class LoyaltyAwardRules(_Strict):
    """The long-loyalty award for consecutive years with purchases."""

    consecutive_years: int = Field(default=5, ge=2)
    points: Minor = 5000


class SatisfactionLevel(_Strict):
    """A named band of average satisfaction (1-5) and the repurchase rate it predicts."""

    name: str
    min_score: float = Field(ge=1, le=5)
    repurchase_rate: float | None = Field(default=None, ge=0, le=1)


class SurveyRules(_Strict):
    """Survey scales, thresholds, dimension weights and satisfaction levels."""

    expire_after_days: int = Field(default=7, ge=1)
    ces_max: int = Field(default=7, ge=5, le=7)
    satisfied_csat_at_least: int = Field(default=4, ge=1, le=5)
    promoter_nps_at_least: int = Field(default=9, ge=0, le=10)
    detractor_nps_at_most: int = Field(default=6, ge=0, le=10)
    low_score_csat_at_most: int = Field(default=2, ge=1, le=5)
    weights: dict[str, float]
    levels: list[SatisfactionLevel] = Field(min_length=1)
    level_recent_answers: int = Field(default=5, ge=1)
    recovery_followup_after_hours: float = Field(default=24, ge=0, le=24 * 90)

    @model_validator(mode="after")
    def _consistent(self) -> SurveyRules:
        unknown = sorted(set(self.weights) - set(DIMENSIONS))
        if unknown:
            raise ValueError(f"weights: unknown dimension(s) {unknown}; known: {list(DIMENSIONS)}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must not be negative")
        if not math.isclose(sum(self.weights.values()), 1.0, abs_tol=1e-9):
            raise ValueError(f"weights must sum to 1.0, not {sum(self.weights.values()):.4f}")
        if self.detractor_nps_at_most >= self.promoter_nps_at_least:
            raise ValueError("detractor_nps_at_most must be below promoter_nps_at_least")
        scores = [level.min_score for level in self.levels]
        if scores != sorted(scores, reverse=True) or len(set(scores)) != len(scores):
            raise ValueError("levels must be ordered by min_score, highest first, without repeats")
        return self


class ChurnRules(_Strict):
    """Which signals raise a churn-risk alert."""

    complaint_window_days: int = Field(default=90, ge=1)
    min_recent_complaints: int = Field(default=2, ge=1)
    low_score: bool = True
    sla_breach_tiers: list[CustomerTier] = Field(default_factory=lambda: [CustomerTier.HIGH_VALUE])
    cooldown_days: int = Field(default=30, ge=0)


class CareRules(_Strict):
    """Care follow-ups after a resolution, and churn signals."""

    followup_days: list[int] = Field(default_factory=lambda: [3, 7], min_length=1)
    churn: ChurnRules = Field(default_factory=ChurnRules)

    @model_validator(mode="after")
    def _days_positive(self) -> CareRules:
        if any(d < 1 for d in self.followup_days) or len(set(self.followup_days)) != len(self.followup_days):
            raise ValueError("followup_days must be distinct positive day counts")
        return self


class LoyaltyPolicy(_Strict):
    """The whole loyalty policy file."""

    version: str = Field(min_length=1)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    # Calendar rules (the year of a purchase, the birthday month, the yearly roll-over) use local time.
    timezone: str = "Asia/Shanghai"
    tiers: TierRules
    benefits: dict[CustomerTier, list[Benefit]]
    points: PointsRules
    referral: ReferralRules = Field(default_factory=ReferralRules)
    loyalty_award: LoyaltyAwardRules = Field(default_factory=LoyaltyAwardRules)
    surveys: SurveyRules
    care: CareRules = Field(default_factory=CareRules)

    @model_validator(mode="after")
    def _benefits_complete(self) -> LoyaltyPolicy:
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from exc
        _all_tiers(self.benefits, "benefits")
        for tier, items in self.benefits.items():
            codes = [b.code for b in items]
            if len(set(codes)) != len(codes):
                raise ValueError(f"benefits.{tier.value}: benefit codes must be unique")
        return self

    def local_date(self, moment: datetime) -> date:
        """The calendar date of `moment` where the customers live."""
        if moment.tzinfo is None:
            raise ValueError("moment must be timezone-aware")
        return moment.astimezone(zoneinfo.ZoneInfo(self.timezone)).date()


def _describe(error: ValidationError) -> str:
    """One line per problem, each naming the field path, e.g. `points.earn_percent.mid_value`."""
    return "; ".join(describe_errors(error))


def parse_policy(data: object, source: str = "policy") -> LoyaltyPolicy:
    """Validate an already-parsed policy document."""
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: the policy must be a mapping with a `version:` field")
    try:
        return LoyaltyPolicy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{source}: invalid loyalty policy: {_describe(exc)}") from exc


def load_policy(path: Path | str | None = None) -> LoyaltyPolicy:
    """Read and validate a policy file (the packaged policy.yaml by default)."""
    file = Path(path) if path else DEFAULT_POLICY_PATH
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{file}: cannot read the loyalty policy: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"{file}: not valid YAML: {exc}") from exc
    return parse_policy(data, str(file))


@lru_cache(maxsize=1)
def default_policy() -> LoyaltyPolicy:
    """The packaged policy, loaded once."""
    return load_policy()
