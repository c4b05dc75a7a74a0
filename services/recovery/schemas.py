"""Recovery's API bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events.compensation import CompensationReason, Remedy, RemedyKind
from shared.events.vocabulary import CustomerTier, Role

CUSTOMER_ID = r"^[^\s\x00-\x1f\x7f]{1,100}$"
INCIDENT_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,59}$"
CustomerId = Annotated[str, Field(pattern=CUSTOMER_ID, examples=["cust-0001"])]


def _no_nul(value: Any) -> Any:
    """Refuse NUL characters anywhere in a text value (PostgreSQL text cannot hold them)."""
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(t, str) and "\x00" in t for t in texts):
        raise ValueError("must not contain NUL characters")
    return value


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _printable_text(cls, value: Any) -> Any:
        return _no_nul(value)


class RemedyIn(_In):
    """A remedy an operator names (money in minor units: 20000 = 200.00 CNY)."""

    option_id: str = Field(default="operator", pattern=r"^[a-z0-9_]{1,40}$")
    kind: RemedyKind
    amount_minor: int = Field(default=0, ge=0, le=100_000_000, description="Value or ceiling, minor units.")
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    percent: int = Field(default=0, ge=0, le=100)
    points: int = Field(default=0, ge=0, le=100_000_000)
    description: str = Field(default="", max_length=200)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"kind": "account_credit", "amount_minor": 20000, "currency": "CNY"}]},
    )

    @model_validator(mode="after")
    def _has_a_value(self) -> RemedyIn:
        if self.kind == "points" and self.points <= 0:
            raise ValueError("a points remedy needs points > 0")
        if self.kind != "points" and self.amount_minor <= 0:
            raise ValueError(f"a {self.kind} remedy needs amount_minor > 0")
        if self.kind == "coupon_percent" and self.percent <= 0:
            raise ValueError("a coupon_percent remedy needs percent > 0")
        return self

    def to_remedy(self) -> Remedy:
        """The event model."""
        return Remedy(**self.model_dump())


class ManualCompensationIn(_In):
    """An operator's own compensation for a customer (reason `manual`)."""

    customer_id: CustomerId
    case_id: str | None = Field(default=None, min_length=1, max_length=40)
    department: str | None = Field(default=None, max_length=40)
    remedy: RemedyIn
    note: str = Field(min_length=1, max_length=2000)


class AcceptIn(_In):
    """The customer's choice among the offered options."""

    option_id: str = Field(min_length=1, max_length=40, examples=["coupon"])


class ApproveIn(_In):
    """An approver's note."""

    note: str | None = Field(default=None, max_length=2000)


class RejectIn(_In):
    """Why an approver refused."""

    note: str = Field(min_length=1, max_length=2000)


class ReverseIn(_In):
    """Why an issued compensation is reversed."""

    note: str = Field(min_length=1, max_length=2000)


class SegmentIn(_In):
    """Every projected customer of a region and/or tier (both: customers matching both)."""

    region: str | None = Field(default=None, min_length=1, max_length=60)
    tier: CustomerTier | None = None

    @model_validator(mode="after")
    def _not_everyone_by_accident(self) -> SegmentIn:
        if self.region is None and self.tier is None:
            raise ValueError("a segment needs a region, a tier or both")
        return self


class IncidentIn(_In):
    """An incident that hit many customers, and who they are (a list, a segment, or a list uploaded in parts)."""

    incident_id: str | None = Field(default=None, pattern=INCIDENT_ID, description="Your id; generated when absent.")
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    remedy: RemedyIn | None = Field(default=None, description="Everyone's remedy; absent: the policy's per tier.")
    customer_ids: list[CustomerId] | None = Field(default=None, max_length=5000)
    segment: SegmentIn | None = None
    more_customers: bool = Field(
        default=False, description="The list continues with POST /v1/incidents/{id}/customers, then /complete."
    )

    @model_validator(mode="after")
    def _who(self) -> IncidentIn:
        if (self.customer_ids is None) == (self.segment is None):
            raise ValueError("give either customer_ids (a list) or segment")
        if self.segment is not None and self.more_customers:
            raise ValueError("more_customers applies to a list, not to a segment")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self


class CustomerIdsIn(_In):
    """One part of an incident's customer list."""

    customer_ids: list[CustomerId] = Field(min_length=1, max_length=5000)


class IncidentProgress(BaseModel):
    """Where an incident's fan-out stands."""

    incident_id: str
    title: str
    status: str
    total: int = Field(description="Customers queued so far.")
    issued: int
    pending: int
    failed: int
    skipped: int = Field(description="Customers the policy gave nothing (e.g. a cap, when incidents count).")
    collecting: bool
    declared_by: str
    started_at: datetime
    ended_at: datetime | None
    created_at: datetime
    completed_at: datetime | None
    remedy: dict[str, Any] | None
    segment: dict[str, Any] | None


class CompensationOut(BaseModel):
    """One compensation and its state."""

    compensation_id: str
    customer_id: str
    case_id: str | None
    incident_id: str | None
    reason: CompensationReason
    status: str
    customer_tier: str | None
    department: str | None
    options: list[Remedy]
    default_option_id: str | None
    chosen_option_id: str | None
    customer_may_choose: bool
    required_role: Role | None
    value_minor: int
    currency: str
    reasons: list[str]
    policy_version: str | None
    offer_expires_at: datetime | None
    decided_by: str | None
    note: str | None
    created_at: datetime
    updated_at: datetime


class LedgerEntryOut(BaseModel):
    """One append-only ledger entry (a reversal is negative)."""

    id: str
    compensation_id: str | None
    entry_kind: str
    customer_id: str
    case_id: str | None
    incident_id: str | None
    reason: str
    kind: str
    option_id: str | None
    amount_minor: int
    points: int
    percent: int
    value_minor: int
    currency: str
    department: str | None
    budget_month: str | None
    actor: str | None
    note: str | None
    reverses_entry_id: str | None
    issued_at: datetime


class CompensationDetail(CompensationOut):
    """A compensation with its ledger entries."""

    ledger: list[LedgerEntryOut]


class CompensationPage(BaseModel):
    """A page of compensations, newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[CompensationOut]
    next_cursor: str | None


class BudgetOut(BaseModel):
    """A department's budget for one month."""

    department: str
    month: str
    monthly_minor: int
    spent_minor: int
    reserved_minor: int
    left_minor: int
    currency: str


class CustomerOut(BaseModel):
    """What recovery knows of a customer, and their cap headroom in the window."""

    customer_id: str
    tier: CustomerTier
    tier_known: bool
    region: str | None
    window_days: int
    received_minor: int
    received_count: int
    cap_minor: int
    cap_count: int
    headroom_minor: int


class TierSpend(BaseModel):
    """Compensation issued to one customer tier in a window (reversals subtracted)."""

    customer_tier: str | None
    count: int
    value_minor: int
    points: int
    currency: str


class SpendFigures(BaseModel):
    """Compensation spent per customer tier over a window, for the KPI board."""

    since: datetime
    until: datetime
    by_tier: list[TierSpend]
