"""Routing's API bodies: operator actions in, cases, queues and figures out."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.routing.sla import ClockView
from shared.events.vocabulary import Category, CustomerTier, Role, Severity

Risk = Literal["on_track", "at_risk", "breached"]
State = Literal["new", "open", "waiting", "resolved"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpdateCase(_Body):
    """An update given to the customer: starts a new next-update window."""

    note: str = Field(min_length=1, max_length=2000, examples=["Replacement part ordered, arrives Thursday."])


class HandOff(_Body):
    """Pass the case to another queue (and optionally a named person); the owner stays."""

    to_queue: str = Field(min_length=1, max_length=40, examples=["billing"])
    reason: str = Field(min_length=1, max_length=500, examples=["Refund needs billing approval."])
    to_owner: str | None = Field(default=None, min_length=1, max_length=100, examples=["agent-wang"])


class Escalate(_Body):
    """Escalate the case one rung of the ladder."""

    reason: str = Field(min_length=1, max_length=500, examples=["Customer is a journalist."])


class Pause(_Body):
    """Wait on the customer or a third party: every clock holds."""

    waiting_on: Literal["customer", "third_party"] = Field(examples=["customer"])


class ResolveCase(_Body):
    """Resolve a case."""

    resolution_code: str = Field(min_length=1, max_length=60, examples=["replaced_item"])
    first_handling: bool | None = Field(
        default=None,
        description="Resolved at first handling. Left out: true unless the case was handed off or reopened.",
    )


class Reopen(_Body):
    """Reopen a resolved case."""

    reason: str = Field(min_length=1, max_length=500, examples=["Customer reports the fault is back."])


class PendingHandOffOut(BaseModel):
    """A hand-off waiting for the receiving side to acknowledge it."""

    from_queue: str
    to_queue: str
    from_owner: str | None
    to_owner: str | None
    reason: str
    requested_at: datetime
    by: str


class CaseOut(BaseModel):
    """A case with its tier (and why), owner, queue and three clocks, each on its own."""

    case_id: str
    complaint_id: str
    customer_id: str
    state: State
    severity: Severity
    initial_severity: Severity | None = None
    severity_reasons: list[str]
    complex: bool
    level: Role
    queue: str
    owner: str | None = Field(description="First-contact owner: the first to acknowledge; stays through hand-offs.")
    assignee: str | None = Field(description="Who handles the case now.")
    category: Category
    customer_tier: CustomerTier
    risk: Risk
    waiting_on: str | None = None
    clocks: list[ClockView]
    pending_handoff: PendingHandOffOut | None = None
    handoff_count: int
    reopen_count: int
    escalations: int
    follow_ups: int
    received_at: datetime
    routed_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution_code: str | None = None
    first_handling: bool | None = None
    sla_breached: bool
    paused_seconds: float
    channel: str | None = None
    subject: str | None = None
    excerpt: str | None = None
    policy_version: str


class CaseList(BaseModel):
    """One page of a queue."""

    items: list[CaseOut]
    total: int
    limit: int
    offset: int


class HistoryEntry(BaseModel):
    """One entry of a case's history: an action (who did what) or an event it published."""

    at: datetime
    kind: Literal["action", "event"]
    name: str
    by: str | None = None
    role: str | None = None
    event_id: str | None = None
    detail: dict[str, Any]


class HandOffRecord(BaseModel):
    """A hand-off: from, to, why, and how long until the receiving side took the case."""

    from_queue: str
    to_queue: str
    requested_queue: str
    from_owner: str | None
    to_owner: str | None
    reason: str
    requested_by: str
    requested_at: datetime
    taken_by: str | None
    taken_at: datetime | None
    handoff_seconds: float | None


class EarlierComplaint(BaseModel):
    """Another case of the same customer, received before this one."""

    case_id: str
    complaint_id: str
    received_at: datetime
    channel: str | None
    subject: str | None
    excerpt: str | None
    category: str
    severity: str
    state: str
    resolution_code: str | None


class CaseDetail(CaseOut):
    """A case with its full history, its hand-offs and the customer's earlier complaints."""

    history: list[HistoryEntry]
    handoffs: list[HandOffRecord]
    earlier_complaints: list[EarlierComplaint]


class CustomerOut(BaseModel):
    """What routing knows of a customer: the tier projected from loyalty's events, and their cases."""

    customer_id: str
    tier: CustomerTier
    tier_updated_at: datetime | None = Field(description="When loyalty changed the tier; null: never (potential).")
    cases: list[EarlierComplaint]


class QueueOut(BaseModel):
    """A queue and the work in it."""

    name: str
    label: str
    department: str | None
    calendar: str | None = Field(description="Business-hours calendar; null means the clocks run 24/7.")
    open: int = Field(description="Cases not resolved.")
    by_state: dict[str, int]
    by_severity: dict[str, int]
    at_risk: int
    breached: int


class Duration(BaseModel):
    """An average duration over a window, against its target."""

    count: int
    avg_seconds: float | None
    max_seconds: float | None
    target_seconds: float
    meets_target: bool | None


class Rate(BaseModel):
    """A share over a window, against its target."""

    numerator: int
    denominator: int
    rate: float | None
    target: float | None = None
    meets_target: bool | None = None


class Compliance(BaseModel):
    """SLA compliance of one group: cases whose outcome is known (resolved or breached) that met every clock."""

    group: str
    met: int
    decided: int
    rate: float | None


class Figures(BaseModel):
    """Routing's figures over a window of routed cases."""

    since: datetime
    until: datetime
    cases: int
    intake_to_routed: Duration
    first_response: Duration
    handoff: Duration
    resolution_rate: Rate
    first_handling_rate: Rate
    escalations: int
    pauses: int
    paused_seconds: float
    sla_compliance: Compliance
    sla_compliance_by_tier: list[Compliance]
    sla_compliance_by_queue: list[Compliance]
