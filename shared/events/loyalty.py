"""Events loyalty publishes."""

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.events.base import EventData, register
from shared.events.vocabulary import CustomerTier
from shared.topics import Topic

LedgerKind = Literal["earn", "redeem", "expire", "reverse", "adjust"]


@register
class PointsChanged(EventData):
    """An entry was appended to a customer's points ledger."""

    event_type = "loyalty.points_changed.v1"
    topic = Topic.LOYALTY

    customer_id: str
    entry_id: str
    kind: LedgerKind
    points: int
    balance: int
    reason: str
    compensation_id: str | None = None
    case_id: str | None = None
    order_id: str | None = None
    # A redemption's money value (minor units), with the tier's exchange bonus applied.
    value_minor: int | None = None
    currency: str | None = None


@register
class TierChanged(EventData):
    """A customer's tier changed; routing and recovery project it."""

    event_type = "loyalty.tier_changed.v1"
    topic = Topic.LOYALTY

    customer_id: str
    from_tier: CustomerTier | None
    to_tier: CustomerTier
    annual_spend_minor: int = 0
    repeat_purchases: int = 0
    reason: str = ""
    changed_at: datetime


@register
class BenefitIssued(EventData):
    """A tier benefit was delivered (a coupon landed, a booking confirmed)."""

    event_type = "loyalty.benefit_issued.v1"
    topic = Topic.LOYALTY

    customer_id: str
    benefit: str
    period: str
    issued_at: datetime
    tier: CustomerTier | None = None
    description: str = ""
    coupon_minor: int = 0
    currency: str = "CNY"
    discount_percent: int = 0
    points: int = 0


@register
class SurveyIssued(EventData):
    """A satisfaction survey was sent after a case closed."""

    event_type = "survey.issued.v1"
    topic = Topic.LOYALTY

    survey_id: str
    customer_id: str
    case_id: str
    expires_at: datetime
    follow_up_of: str | None = None
    # The one-time answer token, for the channel that delivers the survey to the customer.
    token: str | None = None
    customer_tier: CustomerTier | None = None
    queue: str | None = None
    category: str | None = None


@register
class SurveyAnswered(EventData):
    """A customer answered a survey."""

    event_type = "survey.answered.v1"
    topic = Topic.LOYALTY

    survey_id: str
    customer_id: str
    case_id: str
    csat: int | None = Field(default=None, ge=1, le=5)
    nps: int | None = Field(default=None, ge=0, le=10)
    ces: int | None = Field(default=None, ge=1, le=7)
    dimensions: dict[str, int] = Field(default_factory=dict)
    comment: str | None = None
    low_score: bool = False
    follow_up_of: str | None = None
    answered_at: datetime
    customer_tier: CustomerTier | None = None
    queue: str | None = None
    category: str | None = None
    # Weighted satisfaction (1-5) from the five dimensions, or the CSAT when none were answered.
    satisfaction: float | None = None


@register
class CareFollowupDue(EventData):
    """A day-3 or day-7 care follow-up is due."""

    event_type = "care.followup_due.v1"
    topic = Topic.LOYALTY

    customer_id: str
    case_id: str
    day: int
    due_at: datetime


@register
class ChurnRisk(EventData):
    """Signals say this customer may leave: reach out first."""

    event_type = "care.churn_risk.v1"
    topic = Topic.LOYALTY

    customer_id: str
    signals: list[str]
    detected_at: datetime
    customer_tier: CustomerTier | None = None
    case_id: str | None = None
