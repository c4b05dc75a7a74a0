"""Routing policy: SLA targets per tier, severity rules, queues, ladder and permissions.

The figures live in ``policy.yaml`` next to this module (versioned); this module
only describes and validates them, so a bad file fails at start with a message
naming the field.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.routing.calendar import BusinessCalendar
from shared.events.vocabulary import Category, CustomerTier, Department, Role, Sentiment, Severity, UrgencyCue
from shared.policy_file import Duration, describe_errors

DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yaml")
SEVERITY_ORDER: tuple[Severity, ...] = (Severity.P1, Severity.P2, Severity.P3, Severity.P4)
CLOCKS: tuple[str, ...] = ("first_response", "next_update", "resolution")
ACTIONS: tuple[str, ...] = ("acknowledge", "update", "handoff", "escalate", "pause", "resume", "resolve", "reopen")



def severity_index(severity: Severity) -> int:
    """0 for P1 (most severe) up to 3 for P4."""
    return SEVERITY_ORDER.index(severity)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierTargets(_Strict):
    """SLA targets of one severity tier."""

    label: str
    first_response: Duration
    next_update: Duration
    resolution: Duration

    @model_validator(mode="after")
    def _ordered(self) -> TierTargets:
        for name in CLOCKS:
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be longer than zero")
        if self.first_response > self.resolution:
            raise ValueError("first_response must not be longer than resolution")
        return self

    def target(self, clock: str) -> timedelta:
        """The target of one clock by name."""
        return getattr(self, clock)


class Raise(_Strict):
    """A severity rule: lift by ``raise`` steps (not beyond ``up_to``) and/or to ``at_least``."""

    raise_: int = Field(0, alias="raise", ge=0, le=3)
    up_to: Severity = Severity.P1
    at_least: Severity | None = None


class SentimentRule(Raise):
    """Raise for a sentiment, optionally only when the score is at or below ``max_score``."""

    sentiment: Sentiment
    max_score: float | None = None


class ThresholdRule(Raise):
    """Raise once a count reaches ``min``; among rules of one kind only the strongest applies."""

    min: int = Field(ge=1)


class SeverityRules(_Strict):
    """Inputs of the tier function and what each one does."""

    category_base: dict[Category, Severity]
    urgency_cues: dict[UrgencyCue, Raise] = Field(default_factory=dict)
    sentiment: list[SentimentRule] = Field(default_factory=list)
    customer_tier: dict[CustomerTier, Raise] = Field(default_factory=dict)
    public_reach: list[ThresholdRule] = Field(default_factory=list)
    repeat_contacts_30d: list[ThresholdRule] = Field(default_factory=list)
    departments: list[ThresholdRule] = Field(default_factory=list)
    # Cues that say the same as a measured signal share its group, so one fact is not counted twice.
    cue_groups: dict[UrgencyCue, Literal["public_reach", "repeat_contacts_30d"]] = Field(default_factory=dict)

    @field_validator("category_base")
    @classmethod
    def _every_category(cls, value: dict[Category, Severity]) -> dict[Category, Severity]:
        missing = sorted(set(Category) - set(value))
        if missing:
            raise ValueError(f"missing base tier for categories {missing}")
        return value


class ComplexRules(_Strict):
    """When a case is complex, a specialist must be engaged (next update) within ``specialist_within``."""

    specialist_within: Duration
    min_departments: int = Field(2, ge=1)
    min_repeat_contacts_30d: int = Field(3, ge=1)
    urgency_cues: list[UrgencyCue] = Field(default_factory=list)


class QueueSpec(_Strict):
    """One case queue."""

    label: str
    department: Department | None = None
    calendar: str | None = Field(None, description="Name of a calendar; none means 24/7.")


class GreenChannel(_Strict):
    """The cross-department queue that resolves within a fixed time."""

    queue: str = "green_channel"
    min_departments: int = Field(2, ge=2)
    resolution_within: Duration
    max_reassignments: int = Field(2, ge=0, description="A case handed off more often goes to the green channel.")


class Ladder(_Strict):
    """Escalation ladder, lowest level first, and how many tiers one step adds."""

    levels: list[Role]
    severity_steps: int = Field(1, ge=0, le=3)

    @field_validator("levels")
    @classmethod
    def _distinct(cls, value: list[Role]) -> list[Role]:
        if not value or len(set(value)) != len(value):
            raise ValueError("levels must list distinct roles, lowest first")
        return value


class KpiTargets(_Strict):
    """Targets the figures are reported against."""

    intake_to_routed: Duration = timedelta(minutes=2)
    first_response: Duration = timedelta(minutes=2)
    handoff: Duration = timedelta(minutes=5)
    resolution_rate: float = Field(0.85, ge=0, le=1)
    first_handling_rate: float = Field(0.80, ge=0, le=1)


class RoutingPolicy(_Strict):
    """The whole routing policy file."""

    version: str = Field(min_length=1)
    tiers: dict[Severity, TierTargets]
    warning_share: float = Field(0.75, gt=0, lt=1)
    severity: SeverityRules
    complex: ComplexRules
    queues: dict[str, QueueSpec]
    category_queues: dict[Category, str]
    green_channel: GreenChannel
    calendars: dict[str, BusinessCalendar] = Field(default_factory=dict)
    ladder: Ladder
    permissions: dict[str, Role]
    resolution_codes: list[str] = Field(min_length=1)
    kpi_targets: KpiTargets = Field(default_factory=KpiTargets)

    @field_validator("tiers")
    @classmethod
    def _all_tiers(cls, value: dict[Severity, TierTargets]) -> dict[Severity, TierTargets]:
        missing = [s.value for s in SEVERITY_ORDER if s not in value]
        if missing:
            raise ValueError(f"missing tiers {missing}")
        for clock in CLOCKS:
            targets = [value[s].target(clock) for s in SEVERITY_ORDER]
            if targets != sorted(targets):
                raise ValueError(f"{clock} targets must not shrink from P1 to P4")
        return value

    @field_validator("permissions")
    @classmethod
    def _all_actions(cls, value: dict[str, Role]) -> dict[str, Role]:
        unknown = sorted(set(value) - set(ACTIONS))
        missing = sorted(set(ACTIONS) - set(value))
        if unknown or missing:
            raise ValueError(f"permissions: unknown actions {unknown}, missing actions {missing}")
        return value

    @model_validator(mode="after")
    def _references(self) -> RoutingPolicy:
        for name, queue in self.queues.items():
            if queue.calendar is not None and queue.calendar not in self.calendars:
                raise ValueError(f"queues.{name}.calendar: unknown calendar {queue.calendar!r}")
        for category, queue_name in self.category_queues.items():
            if queue_name not in self.queues:
                raise ValueError(f"category_queues.{category.value}: unknown queue {queue_name!r}")
        if self.green_channel.queue not in self.queues:
            raise ValueError(f"green_channel.queue: unknown queue {self.green_channel.queue!r}")
        covered = {q.department for q in self.queues.values() if q.department is not None}
        missing = sorted(d.value for d in Department if d not in covered)
        if missing:
            raise ValueError(f"queues: no queue for departments {missing}")
        return self

    def targets(self, severity: Severity) -> TierTargets:
        """SLA targets of a tier."""
        return self.tiers[severity]

    def calendar_of(self, queue: str) -> BusinessCalendar | None:
        """The business-hours calendar of a queue; None means the clocks run 24/7."""
        spec = self.queues.get(queue)
        return self.calendars[spec.calendar] if spec and spec.calendar else None

    def queue_of(self, department: Department) -> str:
        """The queue that owns a department's cases."""
        return next(name for name, q in self.queues.items() if q.department == department)


class PolicyError(ValueError):
    """The policy file is missing, unreadable or invalid; the message names the bad field."""


def _describe(exc: ValidationError, source: str) -> str:
    return "\n  ".join([f"invalid routing policy {source}:", *describe_errors(exc)])


def parse_policy(data: Any, source: str = "<data>") -> RoutingPolicy:
    """Validate already-loaded policy data; raises PolicyError naming each bad field."""
    try:
        return RoutingPolicy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_describe(exc, source)) from exc


def load_policy(path: Path | str | None = None) -> RoutingPolicy:
    """Load and validate the routing policy YAML (the packaged default when no path is given)."""
    source = Path(path) if path else DEFAULT_POLICY_PATH
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read routing policy {source}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"routing policy {source} is not valid YAML: {exc}") from exc
    return parse_policy(data, str(source))
