"""Points rules: earning, redemption value, expiry and FIFO consumption of points lots.

Every earn creates a lot; redemptions, expiries and debit adjustments take points from lots,
oldest first. The balance is the sum of what remains in unexpired lots, so it can never go
negative: a debit larger than the balance is refused. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.loyalty.policy import PointsRules
from shared.events.vocabulary import CustomerTier


class InsufficientPointsError(ValueError):
    """A debit asked for more points than the customer can spend."""

    def __init__(self, requested: int, available: int) -> None:
        super().__init__(f"requested {requested} points but only {available} are available")
        self.requested = requested
        self.available = available


class InvalidRedemptionError(ValueError):
    """A redemption request breaks the policy (too few points, not positive)."""


@dataclass(frozen=True)
class Lot:
    """Points earned together (one purchase, one compensation) and what is left of them."""

    lot_id: str
    earned_at: datetime
    expires_at: datetime | None
    remaining: int


@dataclass(frozen=True)
class Take:
    """Points taken from one lot."""

    lot_id: str
    points: int


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def points_for_purchase(amount_minor: int, tier: CustomerTier, rules: PointsRules) -> int:
    """Points a purchase earns: 1 point per whole yuan, times the tier's earning multiplier."""
    if amount_minor < 0:
        raise ValueError("amount_minor must not be negative")
    # Multiply before dividing so that, e.g., 150.50 yuan at 200% earns 301, not 300.
    return amount_minor * rules.earn_percent[tier] // (100 * rules.minor_per_point)


def points_to_reverse(order_points: int, order_minor: int, refunded_before_minor: int, refund_minor: int) -> int:
    """Points to take back for a refund, in proportion to the share of the order refunded.

    Computed on cumulative amounts, so several partial refunds add up exactly to the points the
    order earned and never more.
    """
    if order_minor <= 0 or order_points <= 0:
        return 0
    before = min(order_minor, max(0, refunded_before_minor))
    after = min(order_minor, before + max(0, refund_minor))
    return order_points * after // order_minor - order_points * before // order_minor


def redemption_value_minor(points: int, tier: CustomerTier, rules: PointsRules) -> int:
    """Money value of redeemed points, with the tier's exchange bonus (high value +20%)."""
    if points < 0:
        raise ValueError("points must not be negative")
    return points * rules.redeem_minor_per_point * (100 + rules.exchange_bonus_percent[tier]) // 100


def validate_redemption(points: int, rules: PointsRules) -> None:
    """Refuse a redemption below the policy minimum."""
    if points < rules.min_redeem_points:
        raise InvalidRedemptionError(f"at least {rules.min_redeem_points} points must be redeemed, not {points}")


def lot_expiry(earned_at: datetime, rules: PointsRules) -> datetime:
    """When points earned at `earned_at` expire."""
    _require_aware(earned_at, "earned_at")
    return earned_at + timedelta(days=rules.expire_after_days)


def _fifo(lots: Iterable[Lot]) -> list[Lot]:
    """Oldest first; the lot id breaks ties so the order is the same on every replica."""
    return sorted(lots, key=lambda lot: (lot.earned_at, lot.lot_id))


def is_expired(lot: Lot, now: datetime) -> bool:
    """A lot is expired from its expiry instant on."""
    return lot.expires_at is not None and lot.expires_at <= now


def available_points(lots: Iterable[Lot], now: datetime) -> int:
    """Points that can be spent now: what remains in unexpired lots."""
    _require_aware(now, "now")
    return sum(lot.remaining for lot in lots if lot.remaining > 0 and not is_expired(lot, now))


def expired_takes(lots: Iterable[Lot], now: datetime) -> list[Take]:
    """What expires at `now`: the remainder of every expired lot, oldest first."""
    _require_aware(now, "now")
    return [Take(lot.lot_id, lot.remaining) for lot in _fifo(lots) if lot.remaining > 0 and is_expired(lot, now)]


def consume_fifo(lots: Iterable[Lot], points: int, now: datetime) -> list[Take]:
    """Take `points` from unexpired lots, oldest first; refuse if they do not hold enough."""
    if points <= 0:
        raise ValueError("points to consume must be positive")
    live = [lot for lot in _fifo(lots) if lot.remaining > 0 and not is_expired(lot, now)]
    available = sum(lot.remaining for lot in live)
    if points > available:
        raise InsufficientPointsError(points, available)
    takes: list[Take] = []
    left = points
    for lot in live:
        if left == 0:
            break
        taken = min(lot.remaining, left)
        takes.append(Take(lot.lot_id, taken))
        left -= taken
    return takes


def reversal_takes(lots: Sequence[Lot], points: int, now: datetime, prefer_lot: str | None = None) -> list[Take]:
    """Take back up to `points` (a refund or reversed compensation), never below zero.

    The lot the points came from is used first; the rest is taken oldest first. Points already
    spent cannot be taken back, so the result may hold fewer points than asked.
    """
    if points <= 0:
        return []
    preferred = [lot for lot in lots if lot.lot_id == prefer_lot and lot.remaining > 0 and not is_expired(lot, now)]
    takes: list[Take] = []
    left = points
    if preferred:
        first = min(preferred[0].remaining, left)
        takes.append(Take(preferred[0].lot_id, first))
        left -= first
    others = [lot for lot in lots if lot.lot_id != prefer_lot]
    rest = min(left, available_points(others, now))
    if rest > 0:
        takes.extend(consume_fifo(others, rest, now))
    return takes


def apply_takes(lots: Iterable[Lot], takes: Iterable[Take]) -> list[Lot]:
    """The lots after `takes`; refuses to take more than a lot holds."""
    taken: dict[str, int] = {}
    for take in takes:
        taken[take.lot_id] = taken.get(take.lot_id, 0) + take.points
    result = []
    for lot in lots:
        left = lot.remaining - taken.pop(lot.lot_id, 0)
        if left < 0:
            raise InsufficientPointsError(lot.remaining - left, lot.remaining)
        result.append(Lot(lot.lot_id, lot.earned_at, lot.expires_at, left))
    if taken:
        raise ValueError(f"unknown lot(s): {sorted(taken)}")
    return result


def checked_balance(balance: int, delta: int) -> int:
    """The balance after `delta`; a debit beyond the balance is refused, never recorded."""
    if balance < 0:
        raise ValueError("a balance is never negative")
    if balance + delta < 0:
        raise InsufficientPointsError(-delta, balance)
    return balance + delta
