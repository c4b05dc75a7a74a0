"""The case as routing's pure rules see it, and what a transition returns."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.routing import sla
from services.routing.calendar import BusinessCalendar
from services.routing.policy import RoutingPolicy
from services.routing.sla import ClockState, Pause
from shared.events.base import EventData
from shared.events.cases import Clock, Deadlines
from shared.events.vocabulary import Category, CustomerTier, Department, Role, Severity

CaseStatus = Literal["new", "open", "waiting", "resolved"]
SYSTEM = "system"
CUSTOMER = "customer"


class CaseError(Exception):
    """A transition that cannot happen; ``status`` is the HTTP status it maps to."""

    status = 409
    title = "Illegal transition"
    code = "illegal-transition"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class IllegalTransitionError(CaseError):
    """The case is not in a state that allows the action (409)."""


class ForbiddenError(CaseError):
    """The operator's role does not allow the action on this case (403)."""

    status = 403
    title = "Forbidden"
    code = "forbidden"


class InvalidActionError(CaseError):
    """The action names something the policy does not know (422)."""

    status = 422
    title = "Invalid action"
    code = "invalid-action"


class Actor(BaseModel):
    """Who acts: an operator with a role, or the system itself."""

    model_config = ConfigDict(frozen=True)

    subject: str
    role: Role | None = None


class PendingHandoff(BaseModel):
    """A hand-off requested and not yet taken up by the receiving side."""

    model_config = ConfigDict(frozen=True)

    from_queue: str
    from_owner: str | None
    to_queue: str
    to_owner: str | None
    reason: str
    requested_at: AwareDatetime
    by: str


class CaseSnapshot(BaseModel):
    """Everything routing's rules need to know about one case."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    complaint_id: str
    customer_id: str
    status: CaseStatus = "new"
    severity: Severity
    severity_reasons: list[str] = Field(default_factory=list)
    complex: bool = False
    category: Category
    departments: list[Department] = Field(default_factory=list)
    customer_tier: CustomerTier = CustomerTier.POTENTIAL
    level: Role = Role.AGENT
    queue: str
    owner: str | None = None
    assignee: str | None = None
    handoff_count: int = 0
    pending_handoff: PendingHandoff | None = None
    clocks: dict[Clock, ClockState]
    pauses: list[Pause] = Field(default_factory=list)
    received_at: AwareDatetime
    routed_at: AwareDatetime
    acknowledged_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    resolution_code: str | None = None
    first_handling: bool | None = None
    reopen_count: int = 0
    escalations: int = 0
    follow_ups: int = 0
    policy_version: str = ""

    def calendar(self, policy: RoutingPolicy) -> BusinessCalendar | None:
        """Calendar of the queue the case is in."""
        return policy.calendar_of(self.queue)

    def deadlines(self, policy: RoutingPolicy) -> Deadlines:
        """The three deadlines of the case's current windows."""
        return sla.deadlines(self.clocks, self.calendar(policy), self.pauses)

    def timers(self, policy: RoutingPolicy) -> list[sla.TimerSpec]:
        """Warnings and breaches still to come, earliest first."""
        if self.status == "resolved":
            return []
        return sla.pending_timers(self.clocks.values(), policy.warning_share, self.calendar(policy), self.pauses)

    def views(self, now: datetime, policy: RoutingPolicy) -> list[sla.ClockView]:
        """Each clock as an operator sees it."""
        calendar = self.calendar(policy)
        return [sla.view(c, now, policy.warning_share, calendar, self.pauses) for c in self.clocks.values()]

    def sla_breached(self) -> bool:
        """Whether any clock ever passed its deadline."""
        return any(clock.breaches for clock in self.clocks.values())

    def paused_time(self, now: datetime) -> timedelta:
        """Total time spent waiting on the customer or a third party."""
        return sum(((p.ended_at or now) - p.started_at for p in self.pauses), timedelta(0))


class ActionRecord(BaseModel):
    """One entry of the case history: what was done, by whom, when."""

    model_config = ConfigDict(frozen=True)

    action: str
    by: str
    role: Role | None = None
    at: AwareDatetime
    detail: dict[str, Any] = Field(default_factory=dict)


class Outcome(BaseModel):
    """The case after a transition, the events it causes and the history entry to keep."""

    model_config = ConfigDict(frozen=True)

    case: CaseSnapshot
    events: list[EventData] = Field(default_factory=list)
    record: ActionRecord


def target_for(case_severity: Severity, clock: Clock, queue: str, is_complex: bool, policy: RoutingPolicy) -> timedelta:
    """Target of one clock for a case: the tier's, capped for complex cases and the green channel."""
    target = policy.targets(case_severity).target(clock)
    if clock == "next_update" and is_complex:
        target = min(target, policy.complex.specialist_within)
    if clock == "resolution" and queue == policy.green_channel.queue:
        target = min(target, policy.green_channel.resolution_within)
    return target


def case_target(case: CaseSnapshot, clock: Clock, policy: RoutingPolicy) -> timedelta:
    """Target of one clock for the case as it is now."""
    return target_for(case.severity, clock, case.queue, case.complex, policy)


def tighten_all(case: CaseSnapshot, now: datetime, policy: RoutingPolicy) -> dict[Clock, ClockState]:
    """Shorten every running clock to the case's current targets where that leaves less time."""
    calendar = case.calendar(policy)
    return {
        name: sla.tighten(clock, now, case_target(case, name, policy), calendar, case.pauses)
        for name, clock in case.clocks.items()
    }
