"""Per-customer caps over a rolling window (DOMAIN.md: differentiated by tier).

A cap never refuses a customer outright while headroom remains: options are cut to fit,
and only options that cannot be cut (a free visit) are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from services.recovery.money import fit_remedy, remedy_value_minor, yuan
from services.recovery.policy import RecoveryPolicy
from shared.events.compensation import CompensationReason, Remedy
from shared.events.vocabulary import CustomerTier


class PriorCompensation(BaseModel):
    """Something the customer already received (or was promised) within the cap window."""

    model_config = ConfigDict(frozen=True)

    reason: CompensationReason
    value_minor: int = Field(ge=0)
    case_id: str | None = None
    incident_id: str | None = None
    active: bool = Field(
        default=True, description="Issued or still open; a rejected or reversed one counts only for once-only rules."
    )


def counted(prior: Sequence[PriorCompensation], policy: RecoveryPolicy) -> list[PriorCompensation]:
    """The prior compensations that count against caps (active ones; incidents may be exempt)."""
    exempt = policy.incidents.exempt_from_caps
    return [p for p in prior if p.active and not (exempt and p.reason == "incident")]


def apply_caps(
    options: list[Remedy],
    policy: RecoveryPolicy,
    tier: CustomerTier,
    prior: Sequence[PriorCompensation],
) -> tuple[list[Remedy], int, list[str]]:
    """Options cut to the customer's headroom, the headroom left before this one, and the reasons."""
    cap = policy.caps.for_tier(tier)
    window = policy.caps.window_days
    seen = counted(prior, policy)
    if len(seen) >= cap.max_count:
        note = f"cap.count: {len(seen)} compensations in {window} days reach the {tier} limit of {cap.max_count}"
        return [], 0, [note]
    used = sum(p.value_minor for p in seen)
    headroom = max(cap.max_value_minor - used, 0)
    cur = policy.currency
    kept: list[Remedy] = []
    notes: list[str] = []
    for option in options:
        fitted = fit_remedy(option, headroom, policy, tier)
        if fitted is None:
            notes.append(f"cap.value: option {option.option_id} dropped, {yuan(headroom, cur)} left of the cap")
            continue
        if fitted != option:
            worth = yuan(remedy_value_minor(fitted, policy, tier), cur)
            notes.append(f"cap.value: option {option.option_id} cut to {worth}")
        kept.append(fitted)
    summary = (
        f"cap.value: {yuan(used, cur)} received in {window} days of the {tier} cap "
        f"{yuan(cap.max_value_minor, cur)}, {yuan(headroom, cur)} left"
    )
    return kept, headroom, [summary, *notes]
