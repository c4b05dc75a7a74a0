"""Points: earning by tier, redemption value, refunds, FIFO expiry and a balance that never goes negative."""

from datetime import UTC, datetime, timedelta

import pytest

from services.loyalty.points import (
    InsufficientPointsError,
    InvalidRedemptionError,
    Lot,
    Take,
    apply_takes,
    available_points,
    checked_balance,
    consume_fifo,
    expired_takes,
    lot_expiry,
    points_for_purchase,
    points_to_reverse,
    redemption_value_minor,
    reversal_takes,
    validate_redemption,
)
from services.loyalty.policy import default_policy
from shared.events.vocabulary import CustomerTier

HIGH, MID, POTENTIAL = CustomerTier.HIGH_VALUE, CustomerTier.MID_VALUE, CustomerTier.POTENTIAL
RULES = default_policy().points
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


@pytest.mark.parametrize(
    ("amount_minor", "tier", "points"),
    [
        (0, POTENTIAL, 0),
        (99, POTENTIAL, 0),  # under a yuan earns nothing
        (100, POTENTIAL, 1),  # 1 point per yuan
        (123_456, POTENTIAL, 1_234),
        (123_456, HIGH, 1_234),  # high value's bonus is on exchange, not earning
        (123_456, MID, 2_469),  # mid value: double points (246,912 fen * 2 = 2,469.12)
        (15_050, MID, 301),
    ],
)
def test_points_for_purchase(amount_minor: int, tier: CustomerTier, points: int) -> None:
    assert points_for_purchase(amount_minor, tier, RULES) == points


def test_negative_purchase_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        points_for_purchase(-1, POTENTIAL, RULES)


@pytest.mark.parametrize(
    ("points", "tier", "value_minor"),
    [
        (100, POTENTIAL, 100),  # 100 points = 1 yuan
        (100, MID, 100),
        (100, HIGH, 120),  # high value +20%
        (1_000, HIGH, 1_200),
        (0, HIGH, 0),
    ],
)
def test_redemption_value(points: int, tier: CustomerTier, value_minor: int) -> None:
    assert redemption_value_minor(points, tier, RULES) == value_minor


def test_redemption_minimum() -> None:
    validate_redemption(100, RULES)
    with pytest.raises(InvalidRedemptionError, match="at least 100"):
        validate_redemption(99, RULES)


@pytest.mark.parametrize(
    ("order_points", "order_minor", "before", "refund", "reversed_points"),
    [
        (100, 10_000, 0, 10_000, 100),  # full refund
        (100, 10_000, 0, 5_000, 50),
        (101, 10_000, 0, 5_000, 50),
        (101, 10_000, 5_000, 5_000, 51),  # two halves add up to every point, no more
        (100, 10_000, 10_000, 5_000, 0),  # nothing left to refund
        (100, 10_000, 0, 20_000, 100),  # a refund above the order is capped
        (0, 10_000, 0, 10_000, 0),
    ],
)
def test_points_to_reverse(order_points: int, order_minor: int, before: int, refund: int, reversed_points: int) -> None:
    assert points_to_reverse(order_points, order_minor, before, refund) == reversed_points


def test_lot_expiry_follows_policy_and_requires_aware_time() -> None:
    assert lot_expiry(T0, RULES) == T0 + timedelta(days=730)
    with pytest.raises(ValueError, match="timezone-aware"):
        lot_expiry(datetime(2026, 1, 1), RULES)  # naive on purpose


LOTS = [
    Lot("b", day(10), day(40), 50),
    Lot("a", day(0), day(30), 30),
    Lot("c", day(20), day(50), 70),
    Lot("empty", day(5), day(35), 0),
]


@pytest.mark.parametrize(
    ("now", "takes"),
    [
        (day(29), []),
        (day(30), [Take("a", 30)]),  # expires at its instant
        (day(45), [Take("a", 30), Take("b", 50)]),  # oldest first
        (day(60), [Take("a", 30), Take("b", 50), Take("c", 70)]),
    ],
)
def test_expiry_takes_oldest_first(now: datetime, takes: list[Take]) -> None:
    assert expired_takes(LOTS, now) == takes


@pytest.mark.parametrize(
    ("now", "points", "takes"),
    [
        (day(1), 20, [Take("a", 20)]),
        (day(1), 30, [Take("a", 30)]),
        (day(1), 60, [Take("a", 30), Take("b", 30)]),
        (day(1), 150, [Take("a", 30), Take("b", 50), Take("c", 70)]),
        (day(31), 60, [Take("b", 50), Take("c", 10)]),  # expired lot "a" is not spendable
    ],
)
def test_consume_fifo(now: datetime, points: int, takes: list[Take]) -> None:
    assert consume_fifo(LOTS, points, now) == takes


def test_consume_more_than_available_is_refused() -> None:
    with pytest.raises(InsufficientPointsError) as err:
        consume_fifo(LOTS, 121, day(31))
    assert (err.value.requested, err.value.available) == (121, 120)
    with pytest.raises(ValueError, match="positive"):
        consume_fifo(LOTS, 0, day(1))


def test_same_instant_lots_are_ordered_by_id() -> None:
    lots = [Lot("y", T0, None, 5), Lot("x", T0, None, 5)]
    assert consume_fifo(lots, 6, T0) == [Take("x", 5), Take("y", 1)]


def test_available_points_and_applying_takes() -> None:
    assert available_points(LOTS, day(1)) == 150
    assert available_points(LOTS, day(31)) == 120
    after = apply_takes(LOTS, consume_fifo(LOTS, 60, day(1)))
    assert {lot.lot_id: lot.remaining for lot in after} == {"a": 0, "b": 20, "c": 70, "empty": 0}
    with pytest.raises(InsufficientPointsError):
        apply_takes(LOTS, [Take("a", 31)])
    with pytest.raises(ValueError, match="unknown lot"):
        apply_takes(LOTS, [Take("zz", 1)])


@pytest.mark.parametrize(
    ("points", "prefer", "takes"),
    [
        (20, "c", [Take("c", 20)]),  # the order's own lot first
        (100, "c", [Take("c", 70), Take("a", 30)]),  # then oldest first
        (500, "c", [Take("c", 70), Take("a", 30), Take("b", 50)]),  # never more than the balance
        (40, None, [Take("a", 30), Take("b", 10)]),
        (0, "c", []),
    ],
)
def test_reversal_takes(points: int, prefer: str | None, takes: list[Take]) -> None:
    assert reversal_takes(LOTS, points, day(1), prefer) == takes


@pytest.mark.parametrize(
    ("balance", "delta", "result"),
    [(0, 10, 10), (10, -10, 0), (10, -4, 6)],
)
def test_checked_balance(balance: int, delta: int, result: int) -> None:
    assert checked_balance(balance, delta) == result


def test_balance_never_goes_negative() -> None:
    with pytest.raises(InsufficientPointsError):
        checked_balance(10, -11)
    with pytest.raises(ValueError, match="never negative"):
        checked_balance(-1, 5)
