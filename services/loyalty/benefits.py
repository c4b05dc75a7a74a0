"""Benefits due for a tier at a date, referral rewards and the long-loyalty award. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

from services.loyalty.policy import Benefit, Cadence, LoyaltyAwardRules, LoyaltyPolicy
from shared.events.vocabulary import CustomerTier

LOYALTY_AWARD = "loyalty_award"
REFERRER_COUPON = "referral_referrer_coupon"
NEW_CUSTOMER_COUPON = "referral_new_customer_coupon"


@dataclass(frozen=True)
class DueBenefit:
    """A benefit to deliver now, and the period that makes it deliverable only once."""

    benefit: Benefit
    period: str

    @property
    def code(self) -> str:
        """The benefit's code."""
        return self.benefit.code


def active_benefits(tier: CustomerTier, policy: LoyaltyPolicy) -> list[Benefit]:
    """Every benefit of a tier, as listed in the policy."""
    return list(policy.benefits[tier])


def benefit_period(benefit: Benefit, today: date, birth_month: int | None) -> str | None:
    """The period a delivery counts against, or None when nothing is due today.

    `once` is delivered once per customer, `yearly` once per calendar year, `birthday_month`
    once per year and only during the birthday month; standing benefits are never delivered.
    """
    if benefit.cadence is Cadence.ONCE:
        return "once"
    if benefit.cadence is Cadence.YEARLY:
        return str(today.year)
    if benefit.cadence is Cadence.BIRTHDAY_MONTH and birth_month == today.month:
        return str(today.year)
    return None


def benefits_due(
    tier: CustomerTier,
    today: date,
    birth_month: int | None,
    issued: Collection[tuple[str, str]],
    policy: LoyaltyPolicy,
) -> list[DueBenefit]:
    """Benefits of `tier` due at `today` and not yet issued; `issued` holds (code, period) pairs."""
    due = []
    for benefit in policy.benefits[tier]:
        period = benefit_period(benefit, today, birth_month)
        if period is not None and (benefit.code, period) not in issued:
            due.append(DueBenefit(benefit, period))
    return due


def consecutive_years(purchase_years: Collection[int], year: int) -> int:
    """How many calendar years in a row, ending with `year`, had purchases."""
    count = 0
    while year - count in purchase_years:
        count += 1
    return count


def loyalty_award_due(
    purchase_years: Collection[int], year: int, awarded_years: Collection[int], rules: LoyaltyAwardRules
) -> bool:
    """True when `year` completes a run of `consecutive_years` years with purchases not yet awarded.

    One award per completed run: the next one needs another full run after the last award.
    """
    streak = consecutive_years(purchase_years, year)
    if streak < rules.consecutive_years:
        return False
    run_start = year - rules.consecutive_years + 1
    return not any(run_start <= awarded <= year for awarded in awarded_years)


@dataclass(frozen=True)
class ReferralRewards:
    """Coupons for both sides of a successful referral."""

    referrer_coupon_minor: int
    new_customer_coupon_minor: int


def referral_rewards(policy: LoyaltyPolicy) -> ReferralRewards:
    """Referrer 100-yuan coupon, new customer 50 yuan (by default)."""
    return ReferralRewards(policy.referral.referrer_coupon_minor, policy.referral.new_customer_coupon_minor)
