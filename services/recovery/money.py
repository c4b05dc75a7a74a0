"""What a remedy is worth in minor units, and how remedies grow or shrink to fit a limit.

Caps, budgets and approval limits compare values, so every remedy kind has one:
an amount is its amount (a percent coupon counts at its ceiling), points are converted
at the policy rate (a tier may exchange points at a bonus, DOMAIN.md: high value +20%).
"""

from __future__ import annotations

from services.recovery.policy import AMOUNT_KINDS, FIXED_KINDS, Points, RecoveryPolicy, describe
from shared.events.compensation import Remedy
from shared.events.vocabulary import CustomerTier


def points_value_minor(points: int, rate: Points, tier: CustomerTier | None = None) -> int:
    """The value of `points` in minor units for `tier` (rounded down)."""
    bonus = rate.tier_bonus_percent.get(tier, 0) if tier is not None else 0
    return points * rate.value_minor_per_100_points * (100 + bonus) // (100 * 100)


def points_for_value(value_minor: int, rate: Points, tier: CustomerTier | None = None) -> int:
    """The most points worth at most `value_minor`, rounded down to the policy's points step."""
    bonus = rate.tier_bonus_percent.get(tier, 0) if tier is not None else 0
    points = value_minor * 100 * 100 // (rate.value_minor_per_100_points * (100 + bonus))
    return points - points % rate.rounding


def remedy_value_minor(remedy: Remedy, policy: RecoveryPolicy, tier: CustomerTier | None = None) -> int:
    """The value of a remedy in minor units, as caps and budgets count it."""
    if remedy.kind == "points":
        return points_value_minor(remedy.points, policy.points, tier)
    return remedy.amount_minor


def _with(remedy: Remedy, **changes: int) -> Remedy:
    """A copy with new figures and a description that matches them."""
    changed = remedy.model_copy(update=changes)
    return changed.model_copy(update={"description": describe(changed)})


def round_down(value: int, step: int) -> int:
    """`value` rounded down to a multiple of `step`."""
    return value - value % step


def scale_remedy(remedy: Remedy, percent: int, policy: RecoveryPolicy) -> Remedy:
    """The remedy grown by `percent` (amounts and points; fixed remedies stay as they are)."""
    if percent == 0 or remedy.kind in FIXED_KINDS:
        return remedy
    if remedy.kind == "points":
        points = round_down(remedy.points * (100 + percent) // 100, policy.points.rounding)
        return _with(remedy, points=max(points, remedy.points))
    amount = round_down(remedy.amount_minor * (100 + percent) // 100, policy.rounding_minor)
    return _with(remedy, amount_minor=max(amount, remedy.amount_minor))


def fit_remedy(remedy: Remedy, ceiling_minor: int, policy: RecoveryPolicy, tier: CustomerTier) -> Remedy | None:
    """The remedy cut to be worth at most `ceiling_minor`, or None when it cannot be.

    Amounts and points shrink; a free service or an express replacement is all or nothing.
    """
    if remedy_value_minor(remedy, policy, tier) <= ceiling_minor:
        return remedy
    if remedy.kind in AMOUNT_KINDS:
        amount = round_down(ceiling_minor, policy.rounding_minor)
        return _with(remedy, amount_minor=amount) if amount > 0 else None
    if remedy.kind == "points":
        points = points_for_value(ceiling_minor, policy.points, tier)
        return _with(remedy, points=points) if points > 0 else None
    return None


def yuan(value_minor: int, currency: str) -> str:
    """A human figure for reasons, e.g. '200.00 CNY'."""
    sign = "-" if value_minor < 0 else ""
    major, minor = divmod(abs(value_minor), 100)
    return f"{sign}{major}.{minor:02d} {currency}"
