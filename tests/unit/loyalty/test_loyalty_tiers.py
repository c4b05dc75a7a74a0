"""Tier rules from DOMAIN.md on a table, the yearly roll-over and progress to the next tier."""

import pytest

from services.loyalty.policy import default_policy
from services.loyalty.tiers import (
    YearFigures,
    compute_tier,
    format_money,
    is_upgrade,
    progress_to_next_tier,
    repeat_purchases,
    tier_for_year,
)
from shared.events.vocabulary import CustomerTier

HIGH, MID, POTENTIAL = CustomerTier.HIGH_VALUE, CustomerTier.MID_VALUE, CustomerTier.POTENTIAL
RULES = default_policy().tiers
YUAN = 100


@pytest.mark.parametrize(
    ("spend_yuan", "repeats", "tier"),
    [
        (0, 0, POTENTIAL),  # no purchase yet
        (9_999, 0, POTENTIAL),  # first purchase under 10,000
        (9_999.99, 0, POTENTIAL),
        (10_000, 0, MID),  # 10,000-50,000 is mid value
        (30_000, 0, MID),
        (50_000, 0, MID),  # 50,000 exactly is not "> 50,000"
        (50_000.01, 0, HIGH),
        (80_000, 0, HIGH),
        (100, 1, MID),  # 1-2 repeat purchases
        (100, 2, MID),
        (100, 3, HIGH),  # 3+ repeat purchases
        (100, 7, HIGH),
        (60_000, 1, HIGH),  # either rule is enough
        (20_000, 4, HIGH),
    ],
)
def test_tier_table(spend_yuan: float, repeats: int, tier: CustomerTier) -> None:
    decision = compute_tier(round(spend_yuan * YUAN), repeats, RULES)
    assert decision.tier is tier
    assert decision.reasons


def test_reasons_explain_the_decision() -> None:
    decision = compute_tier(60_000 * YUAN, 3, RULES)
    assert decision.reasons == (
        "annual spend 60,000.00 CNY reaches high_value (at least 50,000.01 CNY)",
        "3 repeat purchase(s) reach high_value (at least 3)",
    )
    assert "below 10,000.00 CNY" in compute_tier(500 * YUAN, 0, RULES).reasons[0]


@pytest.mark.parametrize(("purchases", "repeats"), [(0, 0), (1, 0), (2, 1), (4, 3)])
def test_repeat_purchases_are_purchases_after_the_first(purchases: int, repeats: int) -> None:
    assert repeat_purchases(purchases) == repeats
    assert YearFigures(0, purchases).repeat_purchases == repeats


@pytest.mark.parametrize(
    ("history", "year", "tier"),
    [
        ({2025: YearFigures(60_000 * YUAN, 1)}, 2025, HIGH),
        ({2025: YearFigures(60_000 * YUAN, 1)}, 2026, HIGH),  # kept through the next year
        ({2025: YearFigures(60_000 * YUAN, 1)}, 2027, POTENTIAL),  # roll-over drops it after that
        ({2025: YearFigures(60_000 * YUAN, 1), 2027: YearFigures(12_000 * YUAN, 1)}, 2027, MID),
        ({2026: YearFigures(500 * YUAN, 4)}, 2026, HIGH),
        ({}, 2026, POTENTIAL),
    ],
)
def test_tier_over_years(history: dict, year: int, tier: CustomerTier) -> None:
    assert tier_for_year(history, year, RULES).tier is tier


def test_retained_tier_names_the_year_it_came_from() -> None:
    decision = tier_for_year({2025: YearFigures(60_000 * YUAN, 1)}, 2026, RULES)
    assert decision.reasons[0].startswith("2025: annual spend")


@pytest.mark.parametrize(
    ("spend_yuan", "repeats", "next_tier", "spend_needed", "repeats_needed"),
    [
        (0, 0, MID, 10_000 * YUAN, 1),
        (4_000, 0, MID, 6_000 * YUAN, 1),
        (20_000, 1, HIGH, 30_000 * YUAN + 1, 2),
        (20_000, 2, HIGH, 30_000 * YUAN + 1, 1),
        (60_000, 0, None, 0, 0),
    ],
)
def test_progress_to_next_tier(
    spend_yuan: int, repeats: int, next_tier: CustomerTier | None, spend_needed: int, repeats_needed: int
) -> None:
    progress = progress_to_next_tier(spend_yuan * YUAN, repeats, RULES)
    assert progress.next_tier is next_tier
    assert progress.spend_needed_minor == spend_needed
    assert progress.repeat_purchases_needed == repeats_needed


def test_upgrade_and_money_formatting() -> None:
    assert is_upgrade(None, POTENTIAL)
    assert is_upgrade(MID, HIGH)
    assert not is_upgrade(HIGH, MID)
    assert format_money(-1234567) == "-12,345.67 CNY"
