"""Events recovery publishes."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.events.base import EventData, register
from shared.events.vocabulary import CustomerTier, Role
from shared.topics import Topic

RemedyKind = Literal[
    "coupon_percent", "coupon_amount", "account_credit", "points", "free_service", "expedited_replacement"
]
CompensationReason = Literal["case_resolved", "sla_breach", "low_survey", "incident", "manual"]


class Remedy(BaseModel):
    """One remedy option. Money is integer minor units plus currency."""

    option_id: str
    kind: RemedyKind
    amount_minor: int = Field(default=0, ge=0)
    currency: str = "CNY"
    percent: int = Field(default=0, ge=0, le=100)
    points: int = Field(default=0, ge=0)
    description: str = ""


class CompensationEvent(EventData):
    """Fields every compensation event carries."""

    compensation_id: str
    customer_id: str
    case_id: str | None = None
    incident_id: str | None = None
    reason: CompensationReason


@register
class CompensationOffered(CompensationEvent):
    """The customer may choose among remedies until the offer expires."""

    event_type = "compensation.offered.v1"
    topic = Topic.COMPENSATION

    options: list[Remedy]
    default_option_id: str
    expires_at: datetime
    reasons: list[str] = Field(default_factory=list)
    customer_tier: CustomerTier | None = None


@register
class CompensationPendingApproval(CompensationEvent):
    """The amount is above the acting role's limit and waits for approval."""

    event_type = "compensation.pending_approval.v1"
    topic = Topic.COMPENSATION

    remedy: Remedy
    required_role: Role
    reasons: list[str] = Field(default_factory=list)
    options: list[Remedy] = Field(default_factory=list, description="Every option; `remedy` is the default.")
    customer_may_choose: bool = False
    value_minor: int | None = Field(default=None, description="Value of the most valuable option (what is approved).")


@register
class CompensationIssued(CompensationEvent):
    """Compensation was issued and entered in the ledger."""

    event_type = "compensation.issued.v1"
    topic = Topic.COMPENSATION

    remedy: Remedy
    customer_tier: CustomerTier = CustomerTier.POTENTIAL
    department: str | None = None
    issued_at: datetime
    approved_by: str | None = None
    reasons: list[str] = Field(default_factory=list)
    chosen_by: Literal["customer", "default_on_expiry", "only_option", "no_choice"] | None = None
    value_minor: int | None = Field(default=None, description="What the remedy is worth, as caps and budgets count it.")
    ledger_entry_id: str | None = None


@register
class CompensationRejected(CompensationEvent):
    """An approver rejected a pending compensation."""

    event_type = "compensation.rejected.v1"
    topic = Topic.COMPENSATION

    rejected_by: str
    note: str = ""


@register
class CompensationReversed(CompensationEvent):
    """An issued compensation was reversed by a new ledger entry."""

    event_type = "compensation.reversed.v1"
    topic = Topic.COMPENSATION

    remedy: Remedy
    reversed_by: str
    note: str = ""
    ledger_entry_id: str | None = None


@register
class IncidentDeclared(EventData):
    """An operator declared an incident affecting many customers."""

    event_type = "incident.declared.v1"
    topic = Topic.COMPENSATION
    key_field = "incident_id"

    incident_id: str
    title: str
    started_at: datetime
    declared_by: str
    remedy: Remedy
    remedies_by_tier: dict[CustomerTier, Remedy] = Field(
        default_factory=dict, description="The remedy each tier gets; `remedy` is the potential tier's."
    )
    segment: dict[str, str] | None = Field(default=None, description="region and/or tier, when not a list")
    ended_at: datetime | None = None


@register
class IncidentCompleted(EventData):
    """Every affected customer of an incident was compensated."""

    event_type = "incident.completed.v1"
    topic = Topic.COMPENSATION
    key_field = "incident_id"

    incident_id: str
    issued: int
    failed: int
    completed_at: datetime
    total: int = 0
    skipped: int = 0
