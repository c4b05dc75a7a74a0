"""Recovery policy: the versioned YAML file of compensation figures, validated by pydantic.

The pure rules live in decision.py (the decision), money.py (values and scaling), caps.py
(per-customer caps) and approvals.py (responsibility matrix and budgets); they all take a
`RecoveryPolicy`, so every figure is data, not code.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.events.compensation import Remedy, RemedyKind
from shared.events.vocabulary import ROLE_RANK, CustomerTier, Department, Role, Severity

DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yaml")

Minor = Annotated[int, Field(ge=0)]
Percent = Annotated[int, Field(ge=0, le=1000)]
OptionId = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,40}$")]
Clock = Literal["first_response", "next_update", "resolution"]

# Kinds whose worth is an amount of money (a percent coupon's amount is its ceiling, "20% off, up to ...").
AMOUNT_KINDS: frozenset[str] = frozenset({"coupon_percent", "coupon_amount", "account_credit"})
# Kinds that cannot be given in part: a free visit or an express replacement is all or nothing.
FIXED_KINDS: frozenset[str] = frozenset({"free_service", "expedited_replacement"})


def describe(remedy: Remedy) -> str:
    """A customer-facing label computed from the figures, so a cut or grown remedy never lies.

    Fixed remedies (a free service, an express replacement) keep the policy's own words.
    """
    money = f"{remedy.amount_minor // 100}.{remedy.amount_minor % 100:02d} {remedy.currency}"
    if remedy.kind == "account_credit":
        return f"{money} account credit"
    if remedy.kind == "coupon_amount":
        return f"{money} coupon"
    if remedy.kind == "coupon_percent":
        return f"{remedy.percent}% off the next order, up to {money}"
    if remedy.kind == "points":
        return f"{remedy.points:,} loyalty points"
    return remedy.description or remedy.kind.replace("_", " ")


class PolicyError(ValueError):
    """The policy file is missing, unreadable or invalid; the message names the bad field."""


class _Strict(BaseModel):
    """Unknown keys are typos: reject them rather than silently ignore them."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RemedySpec(_Strict):
    """One remedy option as the policy writes it; `to_remedy` turns it into the event model."""

    id: OptionId
    kind: RemedyKind
    amount_minor: Minor = 0
    percent: int = Field(default=0, ge=0, le=100)
    points: Minor = 0
    description: str = ""

    @model_validator(mode="after")
    def _fields_match_kind(self) -> RemedySpec:
        # Each kind needs its own figure; a remedy worth nothing is a policy mistake.
        if self.kind == "points" and self.points <= 0:
            raise ValueError("a points remedy needs points > 0")
        if self.kind != "points" and self.amount_minor <= 0:
            raise ValueError(f"a {self.kind} remedy needs amount_minor > 0 (its value; a percent coupon's ceiling)")
        if self.kind == "coupon_percent" and self.percent <= 0:
            raise ValueError("a coupon_percent remedy needs percent > 0")
        return self

    def to_remedy(self, currency: str) -> Remedy:
        """The event model of this option, in the policy currency."""
        remedy = Remedy(
            option_id=self.id,
            kind=self.kind,
            amount_minor=self.amount_minor if self.kind != "points" else 0,
            currency=currency,
            percent=self.percent if self.kind == "coupon_percent" else 0,
            points=self.points if self.kind == "points" else 0,
            description=self.description,
        )
        return remedy.model_copy(update={"description": describe(remedy)})


class OptionSet(_Strict):
    """The remedies offered in one situation; empty means no compensation."""

    options: list[RemedySpec] = Field(default_factory=list)
    default: OptionId | None = None

    @model_validator(mode="after")
    def _default_is_an_option(self) -> OptionSet:
        ids = [o.id for o in self.options]
        if len(ids) != len(set(ids)):
            raise ValueError(f"option ids must be unique, got {ids}")
        if self.default is None and len(ids) > 1:
            raise ValueError(f"default is required when there are several options {ids}")
        if self.default is not None and self.default not in ids:
            raise ValueError(f"default {self.default!r} is not one of the options {ids}")
        return self

    @property
    def default_id(self) -> str | None:
        """The default option id (the only option when there is one)."""
        if self.default is not None:
            return self.default
        return self.options[0].id if self.options else None


def _require_all(mapping: dict, keys: list, what: str) -> None:
    missing = [str(k) for k in keys if k not in mapping]
    if missing:
        raise ValueError(f"missing {what}: {', '.join(missing)}")


class TierTable(_Strict):
    """Option sets by customer tier (every tier must be present)."""

    high_value: OptionSet
    mid_value: OptionSet
    potential: OptionSet

    def for_tier(self, tier: CustomerTier) -> OptionSet:
        """The option set of `tier`."""
        return getattr(self, tier.value)


class SeverityRow(_Strict):
    """Option sets of one tier by severity (every severity must be present)."""

    P1: OptionSet
    P2: OptionSet
    P3: OptionSet
    P4: OptionSet


class Matrix(_Strict):
    """Tier x severity: what a resolved case earns."""

    high_value: SeverityRow
    mid_value: SeverityRow
    potential: SeverityRow

    def cell(self, tier: CustomerTier, severity: Severity) -> OptionSet:
        """The option set for one tier and severity."""
        return getattr(getattr(self, tier.value), severity.value)


class RepeatComplaints(_Strict):
    """Customers who had to complain again get more."""

    threshold: int = Field(default=2, ge=1)
    uplift_percent: Percent = 25


class Modifiers(_Strict):
    """Uplifts of a resolved case's remedy; they add up to at most `max_total_uplift_percent`."""

    sla_breached_uplift_percent: Percent = 20
    repeat_complaints: RepeatComplaints = Field(default_factory=RepeatComplaints)
    first_handling_failed_uplift_percent: Percent = 15
    max_total_uplift_percent: Percent = 50


class CustomerCap(_Strict):
    """What one customer may receive within the window."""

    max_value_minor: Minor
    max_count: int = Field(ge=1)


class Caps(_Strict):
    """Per-customer caps over a rolling window."""

    window_days: int = Field(default=30, ge=1, le=366)
    high_value: CustomerCap
    mid_value: CustomerCap
    potential: CustomerCap

    def for_tier(self, tier: CustomerTier) -> CustomerCap:
        """The cap of `tier`."""
        return getattr(self, tier.value)


class Budgets(_Strict):
    """Monthly compensation budget per department; going over needs `over_budget_role`."""

    monthly_minor: dict[Department, Minor] = Field(default_factory=dict)
    default_monthly_minor: Minor
    over_budget_role: Role = Role.MANAGER
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {name!r}") from err
        return name

    def month_of(self, at: datetime) -> str:
        """The budget month ('2026-11') of an instant, in the business's time zone."""
        return at.astimezone(ZoneInfo(self.timezone)).strftime("%Y-%m")

    def monthly_for(self, department: str | None) -> int:
        """The monthly budget of `department` (the default for an unknown or missing one)."""
        try:
            return self.monthly_minor.get(Department(department), self.default_monthly_minor)
        except ValueError:
            return self.default_monthly_minor


class Approvals(_Strict):
    """The responsibility matrix: the largest remedy value each role may grant alone."""

    limits_minor: dict[Role, Minor]
    automatic_role: Role = Role.AGENT

    @field_validator("limits_minor")
    @classmethod
    def _complete_and_rising(cls, limits: dict[Role, int]) -> dict[Role, int]:
        _require_all(limits, list(Role), "role limits")
        ordered = sorted(limits.items(), key=lambda kv: ROLE_RANK[kv[0]])
        for (low, low_limit), (high, high_limit) in pairwise(ordered):
            if high_limit < low_limit:
                raise ValueError(f"limit of {high} ({high_limit}) is below the limit of {low} ({low_limit})")
        return limits

    def limit(self, role: Role) -> int:
        """The largest value `role` may grant without approval."""
        return self.limits_minor[role]

    def lowest_role_for(self, value_minor: int) -> Role | None:
        """The most junior role allowed to grant `value_minor`, or None if no role may."""
        for role in sorted(Role, key=ROLE_RANK.__getitem__):
            if self.limits_minor[role] >= value_minor:
                return role
        return None

    @property
    def top_role(self) -> Role:
        """The most senior role."""
        return max(Role, key=ROLE_RANK.__getitem__)


class Offers(_Strict):
    """How long a customer may choose before the default is applied."""

    customer_choice: bool = True
    expires_after_hours: int = Field(default=24, ge=1, le=24 * 30)

    @property
    def expires_after(self) -> timedelta:
        """The offer lifetime."""
        return timedelta(hours=self.expires_after_hours)


class SlaBreach(_Strict):
    """The delay itself earns a small coupon or a value-added service (DOMAIN.md)."""

    compensate_at_once: bool = True
    clocks: list[Clock] = Field(default_factory=lambda: ["first_response", "resolution"])
    remedies: TierTable


class LowSurvey(_Strict):
    """A low survey answer earns a goodwill remedy, once per case."""

    csat_max: int = Field(default=2, ge=1, le=5)
    nps_detractor_max: int = Field(default=6, ge=0, le=10)
    remedies: TierTable


class Incidents(_Strict):
    """Incident-wide recovery: the default remedy per tier and who may declare."""

    remedies: TierTable
    declare_role: Role = Role.SUPERVISOR
    exempt_from_caps: bool = True


class Points(_Strict):
    """What a point is worth, for caps and budgets."""

    value_minor_per_100_points: int = Field(default=100, ge=1)
    tier_bonus_percent: dict[CustomerTier, Percent] = Field(default_factory=dict)
    rounding: int = Field(default=100, ge=1)


class RecoveryPolicy(_Strict):
    """The whole recovery policy file."""

    version: str = Field(min_length=1)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    rounding_minor: int = Field(default=100, ge=1)
    min_option_value_minor: Minor = 500
    no_compensation_resolution_codes: list[str] = Field(default_factory=list)
    matrix: Matrix
    modifiers: Modifiers = Field(default_factory=Modifiers)
    sla_breach: SlaBreach
    low_survey: LowSurvey
    incidents: Incidents
    caps: Caps
    budgets: Budgets
    approvals: Approvals
    offers: Offers = Field(default_factory=Offers)
    points: Points = Field(default_factory=Points)


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)


def parse_policy(data: object, source: str = "<policy>") -> RecoveryPolicy:
    """Validate a parsed policy document; raises PolicyError naming each bad field."""
    if not isinstance(data, dict):
        raise PolicyError(f"recovery policy {source} must be a mapping at the top level")
    try:
        return RecoveryPolicy.model_validate(data)
    except ValidationError as err:
        raise PolicyError(f"recovery policy {source} is invalid:\n{_format_errors(err)}") from err


def load_policy(path: Path | str = DEFAULT_POLICY_PATH) -> RecoveryPolicy:
    """Read and validate a policy file; raises PolicyError naming the bad field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise PolicyError(f"recovery policy {path} cannot be read: {err}") from err
    except yaml.YAMLError as err:
        raise PolicyError(f"recovery policy {path} is not valid YAML: {err}") from err
    return parse_policy(data, str(path))


@lru_cache(maxsize=8)
def cached_policy(path: str = str(DEFAULT_POLICY_PATH)) -> RecoveryPolicy:
    """The policy at `path`, loaded once per process."""
    return load_policy(path)
