"""Events routing publishes."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.events.base import EventData, register
from shared.events.vocabulary import Category, CustomerTier, Department, Severity
from shared.topics import Topic

Clock = Literal["first_response", "next_update", "resolution"]


class Deadlines(BaseModel):
    """The three SLA clocks of a case, each visible on its own."""

    first_response_due: datetime | None = None
    next_update_due: datetime | None = None
    resolution_due: datetime | None = None


class CaseEvent(EventData):
    """Fields every case event carries."""

    case_id: str
    complaint_id: str
    customer_id: str


@register
class CaseRouted(CaseEvent):
    """A complaint became a case with a severity, a queue and deadlines."""

    event_type = "case.routed.v1"
    topic = Topic.CASES

    severity: Severity
    severity_reasons: list[str] = Field(default_factory=list)
    category: Category
    queue: str
    owner: str | None = None
    departments: list[Department] = Field(default_factory=list)
    customer_tier: CustomerTier = CustomerTier.POTENTIAL
    deadlines: Deadlines
    received_at: datetime
    routed_at: datetime
    policy_version: str = ""
    queue_reason: str | None = None
    complex: bool = False


@register
class CaseAcknowledged(CaseEvent):
    """An operator gave the first response."""

    event_type = "case.acknowledged.v1"
    topic = Topic.CASES

    by: str
    at: datetime
    first_response_seconds: float


@register
class CaseSlaWarning(CaseEvent):
    """A clock passed its warning share (default 75%) of its target."""

    event_type = "case.sla_warning.v1"
    topic = Topic.CASES

    clock: Clock
    due_at: datetime
    severity: Severity


@register
class CaseSlaBreached(CaseEvent):
    """A clock passed its deadline."""

    event_type = "case.sla_breached.v1"
    topic = Topic.CASES

    clock: Clock
    due_at: datetime
    severity: Severity
    customer_tier: CustomerTier = CustomerTier.POTENTIAL


@register
class CaseEscalated(CaseEvent):
    """A case climbed the escalation ladder."""

    event_type = "case.escalated.v1"
    topic = Topic.CASES

    from_level: str
    to_level: str
    from_severity: Severity
    to_severity: Severity
    reason: str
    by: str | None = None


@register
class CaseHandedOff(CaseEvent):
    """A case moved from one queue or owner to another."""

    event_type = "case.handed_off.v1"
    topic = Topic.CASES

    from_queue: str
    to_queue: str
    from_owner: str | None = None
    to_owner: str | None = None
    reason: str
    handoff_seconds: float
    by: str | None = None
    requested_at: datetime | None = None
    handoff_count: int | None = None


@register
class CasePaused(CaseEvent):
    """Clocks paused while the case waits on the customer or a third party."""

    event_type = "case.paused.v1"
    topic = Topic.CASES

    waiting_on: Literal["customer", "third_party"]
    at: datetime
    by: str | None = None


@register
class CaseResumed(CaseEvent):
    """Clocks run again."""

    event_type = "case.resumed.v1"
    topic = Topic.CASES

    at: datetime
    paused_seconds: float
    by: str | None = None


@register
class CaseResolved(CaseEvent):
    """A case is resolved."""

    event_type = "case.resolved.v1"
    topic = Topic.CASES

    severity: Severity
    category: Category
    queue: str
    customer_tier: CustomerTier = CustomerTier.POTENTIAL
    resolution_code: str
    first_handling: bool
    sla_breached: bool = False
    handoff_count: int = 0
    department: str | None = None
    resolved_at: datetime
    resolved_by: str


@register
class CaseReopened(CaseEvent):
    """A resolved case was reopened."""

    event_type = "case.reopened.v1"
    topic = Topic.CASES

    at: datetime
    by: str
    reason: str
