"""Tier rules (DOMAIN.md): high value by spend > 50,000 yuan or 3+ repeat purchases, mid value by
10,000-50,000 yuan or 1-2 repeat purchases, potential otherwise. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.loyalty.policy import TierRules
from shared.events.vocabulary import CustomerTier

# Highest first: the order in which rules are tried.
TIERS_DESCENDING = (CustomerTier.HIGH_VALUE, CustomerTier.MID_VALUE, CustomerTier.POTENTIAL)
TIER_RANK = {CustomerTier.POTENTIAL: 0, CustomerTier.MID_VALUE: 1, CustomerTier.HIGH_VALUE: 2}


@dataclass(frozen=True)
class YearFigures:
    """A customer's purchases in one calendar year, net of refunds."""

    spend_minor: int = 0
    purchases: int = 0

    @property
    def repeat_purchases(self) -> int:
        """Purchases after the first one."""
        return repeat_purchases(self.purchases)


@dataclass(frozen=True)
class TierDecision:
    """A tier and the rules that gave it, for explanation."""

    tier: CustomerTier
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class TierProgress:
    """What separates a customer from the next tier up (either figure is enough)."""

    next_tier: CustomerTier | None
    spend_needed_minor: int = 0
    repeat_purchases_needed: int = 0


def repeat_purchases(purchases: int) -> int:
    """Repeat purchases are the purchases after the first."""
    return max(0, purchases - 1)


def format_money(minor: int, currency: str = "CNY") -> str:
    """`5000001` -> `50,000.01 CNY` (for reasons people read)."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole:,}.{cents:02d} {currency}"


def compute_tier(spend_minor: int, repeats: int, rules: TierRules, currency: str = "CNY") -> TierDecision:
    """The tier that one year's spend and repeat purchases reach, with the reasons."""
    for tier in TIERS_DESCENDING[:-1]:
        rule = rules.rule(tier)
        assert rule is not None  # only potential has no rule
        reasons = []
        if spend_minor >= rule.min_annual_spend_minor:
            reasons.append(
                f"annual spend {format_money(spend_minor, currency)} reaches {tier.value} "
                f"(at least {format_money(rule.min_annual_spend_minor, currency)})"
            )
        if repeats >= rule.min_repeat_purchases:
            reasons.append(f"{repeats} repeat purchase(s) reach {tier.value} (at least {rule.min_repeat_purchases})")
        if reasons:
            return TierDecision(tier, tuple(reasons))
    mid = rules.mid_value
    return TierDecision(
        CustomerTier.POTENTIAL,
        (
            f"annual spend {format_money(spend_minor, currency)} below "
            f"{format_money(mid.min_annual_spend_minor, currency)} and {repeats} repeat purchase(s) "
            f"below {mid.min_repeat_purchases}",
        ),
    )


def tier_for_year(
    history: Mapping[int, YearFigures], year: int, rules: TierRules, currency: str = "CNY"
) -> TierDecision:
    """The tier in `year`: the best of that year's figures and of the `retain_years` years before.

    A tier earned in a year is kept through the following `retain_years` years, so the yearly
    roll-over only lowers a tier when the customer did not re-qualify.
    """
    best: TierDecision | None = None
    for offset in range(rules.retain_years + 1):
        figures = history.get(year - offset, YearFigures())
        decision = compute_tier(figures.spend_minor, figures.repeat_purchases, rules, currency)
        if offset:
            decision = TierDecision(decision.tier, tuple(f"{year - offset}: {r}" for r in decision.reasons))
        if best is None or TIER_RANK[decision.tier] > TIER_RANK[best.tier]:
            best = decision
    assert best is not None
    return best


def progress_to_next_tier(spend_minor: int, repeats: int, rules: TierRules) -> TierProgress:
    """How much more spend, or how many more repeat purchases, reach the next tier up."""
    current = compute_tier(spend_minor, repeats, rules).tier
    if current is CustomerTier.HIGH_VALUE:
        return TierProgress(next_tier=None)
    next_tier = TIERS_DESCENDING[TIERS_DESCENDING.index(current) - 1]
    rule = rules.rule(next_tier)
    assert rule is not None
    return TierProgress(
        next_tier=next_tier,
        spend_needed_minor=max(0, rule.min_annual_spend_minor - spend_minor),
        repeat_purchases_needed=max(0, rule.min_repeat_purchases - repeats),
    )


def is_upgrade(old: CustomerTier | None, new: CustomerTier) -> bool:
    """True when `new` ranks above `old` (a first tier counts as an upgrade from nothing)."""
    return old is None or TIER_RANK[new] > TIER_RANK[old]
