"""Purchases, tiers, benefits, referrals and the loyalty award: the I/O around the pure tier rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.loyalty import ledger
from services.loyalty.benefits import (
    LOYALTY_AWARD,
    NEW_CUSTOMER_COUPON,
    REFERRER_COUPON,
    benefits_due,
    loyalty_award_due,
    referral_rewards,
)
from services.loyalty.ledger import Tx
from services.loyalty.models import benefit_grants, customers, orders, referrals, refunds
from services.loyalty.points import points_for_purchase, points_to_reverse
from services.loyalty.tiers import TierDecision, YearFigures, tier_for_year
from shared.db import insert_ignore
from shared.events.loyalty import BenefitIssued, TierChanged
from shared.events.orders import OrderCompleted, OrderRefunded
from shared.events.vocabulary import CustomerTier


class UnknownOrderError(LookupError):
    """A refund names an order loyalty never saw (or one of another customer)."""


async def year_figures(conn: AsyncConnection, customer_id: str, years: Iterable[int]) -> dict[int, YearFigures]:
    """Net spend and purchases (orders not fully refunded) per calendar year."""
    net = orders.c.amount_minor - orders.c.refunded_minor
    rows = await conn.execute(
        sa.select(orders.c.year, sa.func.sum(net), sa.func.sum(sa.case((net > 0, 1), else_=0)))
        .where(orders.c.customer_id == customer_id, orders.c.year.in_(list(years)))
        .group_by(orders.c.year)
    )
    return {int(year): YearFigures(int(spend or 0), int(count or 0)) for year, spend, count in rows}


async def tier_decision(tx: Tx, customer_id: str) -> tuple[TierDecision, YearFigures, int]:
    """The tier the customer's purchases give now, this year's figures, and the year."""
    year = tx.policy.local_date(tx.now).year
    rules = tx.policy.tiers
    history = await year_figures(tx.conn, customer_id, range(year - rules.retain_years, year + 1))
    decision = tier_for_year(history, year, rules, tx.policy.currency)
    return decision, history.get(year, YearFigures()), year


async def recompute_tier(tx: Tx, customer_id: str) -> CustomerTier:
    """Recompute the tier (the row must be locked); publish `loyalty.tier_changed.v1` when it changes."""
    row = await _customer(tx.conn, customer_id)
    decision, figures, year = await tier_decision(tx, customer_id)
    values: dict[str, Any] = {"tier_year": year, "tier_reasons": list(decision.reasons)}
    if decision.tier.value != row["tier"]:
        values.update(tier=decision.tier.value, tier_changed_at=tx.now)
        await tx.emit(
            TierChanged(
                customer_id=customer_id,
                from_tier=CustomerTier(row["tier"]),
                to_tier=decision.tier,
                annual_spend_minor=figures.spend_minor,
                repeat_purchases=figures.repeat_purchases,
                reason="; ".join(decision.reasons),
                changed_at=tx.now,
            ),
            customer_id,
        )
    await tx.conn.execute(sa.update(customers).where(customers.c.customer_id == customer_id).values(**values))
    return decision.tier


async def _customer(conn: AsyncConnection, customer_id: str) -> Mapping[str, Any]:
    row = (await conn.execute(sa.select(customers).where(customers.c.customer_id == customer_id))).mappings().first()
    if row is None:
        raise ledger.UnknownCustomerError(customer_id)
    return row


async def purchase_tier(conn: AsyncConnection, customer_id: str) -> tuple[bool, CustomerTier | None]:
    """In one query: whether loyalty knows the customer, and their tier once they have purchased
    (None before the first purchase, when loyalty's tier says nothing yet)."""
    purchased = sa.exists().where(orders.c.customer_id == customers.c.customer_id)
    row = (
        await conn.execute(
            sa.select(customers.c.tier, purchased.label("purchased")).where(customers.c.customer_id == customer_id)
        )
    ).first()
    if row is None:
        return False, None
    return True, CustomerTier(row.tier) if row.purchased else None


async def has_purchased(conn: AsyncConnection, customer_id: str) -> bool:
    """True once the customer completed a purchase (tier benefits start with the first purchase)."""
    first = await conn.scalar(sa.select(orders.c.order_id).where(orders.c.customer_id == customer_id).limit(1))
    return first is not None


async def grant(
    tx: Tx,
    customer_id: str,
    benefit: str,
    period: str,
    *,
    tier: CustomerTier | None,
    description: str = "",
    coupon_minor: int = 0,
    discount_percent: int = 0,
    points: int = 0,
) -> bool:
    """Deliver a benefit once per (customer, benefit, period); publish `loyalty.benefit_issued.v1`."""
    created = await insert_ignore(
        tx.conn,
        benefit_grants,
        {
            "customer_id": customer_id,
            "benefit": benefit,
            "period": period,
            "tier": tier.value if tier else None,
            "coupon_minor": coupon_minor,
            "points": points,
            "issued_at": tx.now,
        },
    )
    if not created:
        return False
    if points > 0:
        await ledger.credit(
            tx,
            customer_id,
            points,
            f"benefit {benefit} ({period})",
            source_key=f"benefit:{customer_id}:{benefit}:{period}",
        )
    await tx.emit(
        BenefitIssued(
            customer_id=customer_id,
            benefit=benefit,
            period=period,
            issued_at=tx.now,
            tier=tier,
            description=description,
            coupon_minor=coupon_minor,
            currency=tx.policy.currency,
            discount_percent=discount_percent,
            points=points,
        ),
        customer_id,
    )
    return True


async def issue_due_benefits(tx: Tx, customer_id: str) -> list[str]:
    """Deliver the tier's benefits that are due today and not yet delivered; returns their codes."""
    row = await _customer(tx.conn, customer_id)
    today = tx.policy.local_date(tx.now)
    await tx.conn.execute(
        sa.update(customers).where(customers.c.customer_id == customer_id).values(benefits_checked_on=today)
    )
    if not await has_purchased(tx.conn, customer_id):
        return []
    issued = {
        (r.benefit, r.period)
        for r in await tx.conn.execute(
            sa.select(benefit_grants.c.benefit, benefit_grants.c.period).where(
                benefit_grants.c.customer_id == customer_id
            )
        )
    }
    tier = CustomerTier(row["tier"])
    delivered = []
    for due in benefits_due(tier, today, row["birth_month"], issued, tx.policy):
        b = due.benefit
        if await grant(
            tx,
            customer_id,
            b.code,
            due.period,
            tier=tier,
            description=b.description,
            coupon_minor=b.coupon_minor,
            discount_percent=b.discount_percent,
            points=b.points,
        ):
            delivered.append(b.code)
    return delivered


async def check_loyalty_award(tx: Tx, customer_id: str, year: int) -> bool:
    """Grant the long-loyalty award when `year` completes the run of consecutive purchase years."""
    net = orders.c.amount_minor - orders.c.refunded_minor
    years = set(
        await tx.conn.scalars(sa.select(orders.c.year).where(orders.c.customer_id == customer_id, net > 0).distinct())
    )
    awarded = {
        int(p)
        for p in await tx.conn.scalars(
            sa.select(benefit_grants.c.period).where(
                benefit_grants.c.customer_id == customer_id, benefit_grants.c.benefit == LOYALTY_AWARD
            )
        )
    }
    rules = tx.policy.loyalty_award
    if not loyalty_award_due(years, year, awarded, rules):
        return False
    row = await _customer(tx.conn, customer_id)
    return await grant(
        tx,
        customer_id,
        LOYALTY_AWARD,
        str(year),
        tier=CustomerTier(row["tier"]),
        points=rules.points,
        description=f"{rules.consecutive_years} consecutive years with purchases",
    )


async def register_referral(tx: Tx, referrer_id: str, new_customer_id: str) -> bool:
    """Record who referred a new customer; False when that customer was already referred."""
    return await insert_ignore(
        tx.conn,
        referrals,
        {"new_customer_id": new_customer_id, "referrer_id": referrer_id, "created_at": tx.now},
    )


async def reward_referral(tx: Tx, new_customer_id: str) -> bool:
    """On the new customer's first purchase, give both sides their referral coupons (once)."""
    result = await tx.conn.execute(
        sa.update(referrals)
        .where(referrals.c.new_customer_id == new_customer_id, referrals.c.rewarded_at.is_(None))
        .values(rewarded_at=tx.now)
        .returning(referrals.c.referrer_id)
    )
    referrer = result.scalar()
    if referrer is None:
        return False
    rewards = referral_rewards(tx.policy)
    await ledger.ensure_customer(tx, referrer)
    await grant(
        tx,
        referrer,
        REFERRER_COUPON,
        new_customer_id,
        tier=None,
        coupon_minor=rewards.referrer_coupon_minor,
        description=f"referral of {new_customer_id}",
    )
    await grant(
        tx,
        new_customer_id,
        NEW_CUSTOMER_COUPON,
        "once",
        tier=None,
        coupon_minor=rewards.new_customer_coupon_minor,
        description=f"referred by {referrer}",
    )
    return True


async def record_order(tx: Tx, event: OrderCompleted) -> bool:
    """Earn points for a completed order at the customer's tier, then recompute the tier; once per order."""
    account = await ledger.lock_or_create_customer(tx, event.customer_id)
    year = tx.policy.local_date(event.completed_at).year
    points = points_for_purchase(event.amount_minor, CustomerTier(account["tier"]), tx.policy.points)
    created = await insert_ignore(
        tx.conn,
        orders,
        {
            "order_id": event.order_id,
            "customer_id": event.customer_id,
            "amount_minor": event.amount_minor,
            "refunded_minor": 0,
            "currency": event.currency,
            "completed_at": event.completed_at,
            "year": year,
            "points_earned": points,
        },
    )
    if not created:
        return False
    if points > 0:
        entry = await ledger.credit(
            tx,
            event.customer_id,
            points,
            f"purchase {event.order_id}",
            source_key=f"order:{event.order_id}",
            earned_at=event.completed_at,
            order_id=event.order_id,
        )
        if entry:
            await tx.conn.execute(
                sa.update(orders).where(orders.c.order_id == event.order_id).values(lot_id=entry["entry_id"])
            )
    await recompute_tier(tx, event.customer_id)
    await check_loyalty_award(tx, event.customer_id, year)
    await reward_referral(tx, event.customer_id)
    await issue_due_benefits(tx, event.customer_id)
    return True


async def record_refund(tx: Tx, event: OrderRefunded) -> bool:
    """Take back the refunded share of the order's points and recompute the tier; once per refund."""
    await ledger.lock_or_create_customer(tx, event.customer_id)
    order = (await tx.conn.execute(sa.select(orders).where(orders.c.order_id == event.order_id))).mappings().first()
    if order is None or order["customer_id"] != event.customer_id:
        raise UnknownOrderError(f"refund for unknown order {event.order_id} of customer {event.customer_id}")
    created = await insert_ignore(
        tx.conn,
        refunds,
        {
            "order_id": event.order_id,
            "refunded_at": event.refunded_at,
            "amount_minor": event.amount_minor,
            "customer_id": event.customer_id,
            "points_reversed": 0,
        },
    )
    if not created:
        return False
    before = int(order["refunded_minor"])
    after = min(int(order["amount_minor"]), before + event.amount_minor)
    await tx.conn.execute(sa.update(orders).where(orders.c.order_id == event.order_id).values(refunded_minor=after))
    points = points_to_reverse(int(order["points_earned"]), int(order["amount_minor"]), before, event.amount_minor)
    if points > 0:
        key = f"refund:{event.order_id}:{event.refunded_at.isoformat()}:{event.amount_minor}"
        entry = await ledger.reverse(
            tx,
            event.customer_id,
            points,
            f"refund of order {event.order_id}",
            source_key=key,
            prefer_lot=order["lot_id"],
            order_id=event.order_id,
        )
        if entry:
            await tx.conn.execute(
                sa.update(refunds)
                .where(
                    refunds.c.order_id == event.order_id,
                    refunds.c.refunded_at == event.refunded_at,
                    refunds.c.amount_minor == event.amount_minor,
                )
                .values(points_reversed=-int(entry["points"]))
            )
    await recompute_tier(tx, event.customer_id)
    return True
