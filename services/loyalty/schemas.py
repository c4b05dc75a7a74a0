"""Loyalty's API bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from shared.events.vocabulary import CustomerTier

Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\s/]+$")
]
Dimension = Literal["resolution_efficiency", "attitude", "clarity", "resolution_rate", "empathy"]


def _iso_8601(value: object) -> object:
    """Only ISO 8601 text: a bare number would otherwise be taken as seconds since 1970."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-11-23T10:00:00+08:00")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-11-23T10:00:00+08:00") from None


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must include a time zone offset, e.g. 2026-11-23T10:00:00+08:00")
    return value


AwareDatetime = Annotated[datetime, BeforeValidator(_iso_8601), AfterValidator(_aware)]


class Body(BaseModel):
    """Request bodies refuse unknown fields and coerce nothing (`true` is not a number), so mistakes are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)


class LedgerEntry(BaseModel):
    """One entry of the append-only points ledger; `points` is signed (debits are negative)."""

    entry_id: str
    kind: Literal["earn", "redeem", "expire", "reverse", "adjust"]
    points: int
    balance_after: int
    reason: str
    created_at: datetime
    order_id: str | None = None
    compensation_id: str | None = None
    case_id: str | None = None
    value_minor: int | None = None
    currency: str | None = None
    actor: str | None = None


class LedgerPage(BaseModel):
    """Newest entries first; pass `next_cursor` as `cursor` for the next (older) page."""

    items: list[LedgerEntry]
    next_cursor: str | None = None


class Progress(BaseModel):
    """This year's figures and what separates the customer from the next tier (either figure is enough)."""

    year: int
    annual_spend_minor: int
    repeat_purchases: int
    next_tier: CustomerTier | None
    spend_needed_minor: int
    repeat_purchases_needed: int
    currency: str


class BenefitView(BaseModel):
    """A benefit of the customer's tier and its deliveries."""

    code: str
    description: str
    cadence: str
    coupon_minor: int = 0
    discount_percent: int = 0
    points: int = 0
    issued_periods: list[str] = Field(default_factory=list)


class IssuedBenefit(BaseModel):
    """A delivered benefit (including referral coupons and the loyalty award)."""

    benefit: str
    period: str
    issued_at: datetime
    coupon_minor: int
    points: int


class Satisfaction(BaseModel):
    """The customer's average satisfaction over their latest answers and its level."""

    responses: int
    average: float | None
    level: str | None
    repurchase_rate: float | None


class LoyaltyView(BaseModel):
    """Everything a customer or an agent wants to know about one customer's loyalty."""

    customer_id: str
    balance: int
    redeemable_value_minor: int
    tier: CustomerTier
    tier_reasons: list[str]
    tier_changed_at: datetime | None
    birth_month: int | None
    progress: Progress
    benefits: list[BenefitView]
    issued_benefits: list[IssuedBenefit]
    satisfaction: Satisfaction
    ledger: LedgerPage


class RedeemRequest(Body):
    """Redeem points for their money value."""

    points: int = Field(gt=0, le=100_000_000, examples=[500])
    reason: str = Field(default="redemption", min_length=1, max_length=200)


class RedeemResult(BaseModel):
    """The redemption's ledger entry, the value it gave and the balance left."""

    entry: LedgerEntry
    value_minor: int
    currency: str
    balance: int


class AdjustRequest(Body):
    """A manual correction by a supervisor: positive adds a lot, negative takes points oldest first."""

    points: int = Field(ge=-100_000_000, le=100_000_000, examples=[-200])
    reason: str = Field(min_length=3, max_length=200, examples=["duplicate grant corrected"])


class ProfileUpdate(Body):
    """What loyalty needs to know about the customer besides purchases."""

    birth_month: int | None = Field(default=None, ge=1, le=12, examples=[3])


class ReferralRequest(Body):
    """`referrer_id` brought in `new_customer_id`; both are rewarded on the new customer's first purchase."""

    referrer_id: Identifier
    new_customer_id: Identifier


class ImportOrder(Body):
    """A completed order from the shop's history."""

    order_id: Identifier
    customer_id: Identifier
    amount_minor: int = Field(ge=0, le=10**12)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    completed_at: AwareDatetime


class ImportRefund(Body):
    """A refund from the shop's history."""

    order_id: Identifier
    customer_id: Identifier
    amount_minor: int = Field(gt=0, le=10**12)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    refunded_at: AwareDatetime


class ImportRequest(Body):
    """A back-fill: orders and refunds, published as `order.completed.v1` / `order.refunded.v1`."""

    orders: list[ImportOrder] = Field(default_factory=list)
    refunds: list[ImportRefund] = Field(default_factory=list)


class ImportResult(BaseModel):
    """How many events the import published."""

    orders: int
    refunds: int


class SurveyAnswer(Body):
    """A customer's answer, authorized by the one-time token the survey was sent with."""

    token: str = Field(min_length=20, max_length=200)
    csat: int | None = Field(default=None, ge=1, le=5, description="How satisfied are you? 1-5")
    nps: int | None = Field(default=None, ge=0, le=10, description="How likely are you to recommend us? 0-10")
    ces: int | None = Field(default=None, ge=1, le=7, description="How much effort did it take? 1 (little) - 7")
    dimensions: dict[Dimension, Annotated[int, Field(ge=1, le=5)]] = Field(default_factory=dict)
    comment: str | None = Field(default=None, max_length=2000)


class SurveyAnswerResult(BaseModel):
    """The recorded answer."""

    survey_id: str
    case_id: str
    low_score: bool
    satisfaction: float | None
    follow_up_of: str | None


class SurveyStatus(BaseModel):
    """A survey as an agent sees it (never its token)."""

    survey_id: str
    customer_id: str
    case_id: str
    follow_up_of: str | None
    issued_at: datetime
    expires_at: datetime
    answered_at: datetime | None
    csat: int | None
    nps: int | None
    ces: int | None
    low_score: bool | None
    satisfaction: float | None


class FiguresView(BaseModel):
    """CSAT% (share of 4s and 5s), NPS (%promoters - %detractors), average CES, average satisfaction."""

    responses: int
    csat_percent: float | None
    nps: float | None
    ces_average: float | None
    satisfaction: float | None


class RecoveryView(BaseModel):
    """Follow-up surveys after a recovery and the share whose recovery worked."""

    follow_ups_answered: int
    recovered: int
    recovered_share: float | None


class SatisfactionReport(BaseModel):
    """Figures over first surveys answered in [since, until), overall and per group."""

    since: datetime
    until: datetime
    group_by: Literal["tier", "queue", "category"] | None
    overall: FiguresView
    groups: dict[str, FiguresView]
    recovery: RecoveryView


class FollowupView(BaseModel):
    """One care follow-up: pending, due (published) or cancelled (the customer complained again)."""

    case_id: str
    day: int
    due_at: datetime
    status: Literal["pending", "due", "cancelled"]
    status_at: datetime


class CareView(BaseModel):
    """The care loyalty schedules for one customer."""

    customer_id: str
    followups: list[FollowupView]
    last_churn_alert_at: datetime | None
