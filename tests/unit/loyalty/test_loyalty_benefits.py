"""Benefits due per tier and date (birthday coupon once, in the birthday month), referrals, loyalty award."""

from datetime import date

import pytest

from services.loyalty.benefits import (
    active_benefits,
    benefits_due,
    consecutive_years,
    loyalty_award_due,
    referral_rewards,
)
from services.loyalty.policy import default_policy
from shared.events.vocabulary import CustomerTier

POLICY = default_policy()
HIGH, MID, POTENTIAL = CustomerTier.HIGH_VALUE, CustomerTier.MID_VALUE, CustomerTier.POTENTIAL
WELCOME = [("new_customer_pack", "once"), ("first_after_sales_free", "once")]


def due_codes(tier: CustomerTier, today: date, birth_month: int | None, issued: set) -> list[tuple[str, str]]:
    return [(d.code, d.period) for d in benefits_due(tier, today, birth_month, issued, POLICY)]


@pytest.mark.parametrize(
    ("tier", "today", "birth_month", "issued", "due"),
    [
        (MID, date(2026, 3, 10), 3, set(), [("birthday_coupon", "2026")]),
        (MID, date(2026, 4, 10), 3, set(), []),  # not the birthday month
        (MID, date(2026, 3, 20), 3, {("birthday_coupon", "2026")}, []),  # once per year
        (MID, date(2027, 3, 1), 3, {("birthday_coupon", "2026")}, [("birthday_coupon", "2027")]),
        (MID, date(2026, 3, 10), None, set(), []),  # birthday unknown
        (POTENTIAL, date(2026, 3, 10), None, set(), WELCOME),
        (POTENTIAL, date(2027, 3, 10), None, set(WELCOME), []),
        (HIGH, date(2026, 5, 1), 5, set(), [("dedicated_adviser", "once"), ("free_onsite_service", "2026")]),
        (HIGH, date(2026, 9, 1), 5, {("dedicated_adviser", "once"), ("free_onsite_service", "2026")}, []),
        (HIGH, date(2027, 1, 1), 5, {("dedicated_adviser", "once"), ("free_onsite_service", "2026")},
         [("free_onsite_service", "2027")]),
    ],
)  # fmt: skip
def test_benefits_due(tier: CustomerTier, today: date, birth_month: int | None, issued: set, due: list) -> None:
    assert due_codes(tier, today, birth_month, issued) == due


def test_benefits_per_tier_are_data() -> None:
    high = {b.code: b for b in active_benefits(HIGH, POLICY)}
    assert {"dedicated_adviser", "free_onsite_service", "early_access", "tier_discount", "priority_after_sales"} <= set(
        high
    )
    assert high["tier_discount"].discount_percent == 15
    mid = {b.code: b for b in active_benefits(MID, POLICY)}
    assert mid["birthday_coupon"].coupon_minor == 100_00
    assert {"double_points", "priority_queue"} <= set(mid)
    assert "new_customer_pack" in {b.code for b in active_benefits(POTENTIAL, POLICY)}


@pytest.mark.parametrize(
    ("years", "year", "streak"),
    [
        (set(), 2026, 0),
        ({2026}, 2026, 1),
        ({2022, 2023, 2024, 2025, 2026}, 2026, 5),
        ({2022, 2024, 2025, 2026}, 2026, 3),
    ],
)
def test_consecutive_years(years: set, year: int, streak: int) -> None:
    assert consecutive_years(years, year) == streak


FIVE = {2022, 2023, 2024, 2025, 2026}


@pytest.mark.parametrize(
    ("years", "year", "awarded", "due"),
    [
        (FIVE, 2026, set(), True),  # 5 consecutive years
        (FIVE - {2024}, 2026, set(), False),  # the run was broken
        ({2023, 2024, 2025, 2026}, 2026, set(), False),  # only 4
        (FIVE, 2026, {2026}, False),  # awarded already
        (FIVE | {2027}, 2027, {2026}, False),  # the next award needs another full run
        (FIVE | {2027, 2028, 2029, 2030, 2031}, 2031, {2026}, True),
    ],
)
def test_loyalty_award(years: set, year: int, awarded: set, due: bool) -> None:
    assert loyalty_award_due(years, year, awarded, POLICY.loyalty_award) is due


def test_referral_rewards() -> None:
    rewards = referral_rewards(POLICY)
    assert (rewards.referrer_coupon_minor, rewards.new_customer_coupon_minor) == (100_00, 50_00)
