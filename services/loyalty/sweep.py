"""The periodic sweep: expire old points, roll tiers over at the new year, deliver benefits that fell due.

Safe in every replica: each customer is handled in its own transaction under its row lock, and each
step is idempotent (an expired lot is empty, a tier recomputed for this year is skipped, a benefit is
granted once per period), so two replicas sweeping together only repeat checks, never effects.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.loyalty import accounts, ledger
from services.loyalty.ledger import Tx
from services.loyalty.models import customers, orders, points_lots
from services.loyalty.policy import LoyaltyPolicy
from shared.db import Database, utcnow
from shared.outbox import Emitter
from shared.service import BackgroundTask, Runtime

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    """How many customers each step touched."""

    expired: int = 0
    refreshed: int = 0


def _tx(
    conn: AsyncConnection, db: Database, emitter: Emitter, policy: LoyaltyPolicy, now: datetime, customer_id: str
) -> Tx:
    async def emit(data: object, subject: str | None) -> object:
        return await emitter.emit(conn, data, subject=subject, correlation_id=customer_id)  # type: ignore[arg-type]

    return Tx(conn=conn, emit=emit, policy=policy, db=db, now=now, correlation_id=customer_id)


async def sweep_once(
    db: Database, emitter: Emitter, policy: LoyaltyPolicy, batch: int, now: datetime | None = None
) -> SweepResult:
    """One pass over at most `batch` customers per step."""
    now = now or utcnow()
    result = SweepResult()
    async with db.engine.connect() as conn:
        expiring = list(
            await conn.scalars(
                sa.select(points_lots.c.customer_id)
                .where(points_lots.c.remaining > 0, points_lots.c.expires_at <= now)
                .distinct()
                .limit(batch)
            )
        )
    for customer_id in expiring:
        async with db.transaction() as conn:
            tx = _tx(conn, db, emitter, policy, now, customer_id)
            await ledger.lock_customer(tx, customer_id)
            if await ledger.expire_due(tx, customer_id):
                result.expired += 1
    today = policy.local_date(now)
    async with db.engine.connect() as conn:
        stale = list(
            await conn.scalars(
                sa.select(customers.c.customer_id)
                .where(
                    sa.or_(
                        customers.c.tier_year.is_(None),
                        customers.c.tier_year < today.year,
                        customers.c.benefits_checked_on.is_(None),
                        customers.c.benefits_checked_on < today,
                    )
                )
                .limit(batch)
            )
        )
    settled = await _settle_without_purchases(db, policy, stale, now)
    result.refreshed += len(settled)
    for customer_id in stale:
        if customer_id in settled:
            continue
        async with db.transaction() as conn:
            tx = _tx(conn, db, emitter, policy, now, customer_id)
            await ledger.lock_customer(tx, customer_id)
            await accounts.recompute_tier(tx, customer_id)
            await accounts.issue_due_benefits(tx, customer_id)
            result.refreshed += 1
    return result


async def _settle_without_purchases(
    db: Database, policy: LoyaltyPolicy, customer_ids: list[str], now: datetime
) -> set[str]:
    """Refresh, with one statement, the customers who never purchased; the ids it refreshed.

    For them the per-customer refresh can only record this year's tier of an empty history and that
    benefits were checked today (benefits start with the first purchase): one statement for a sweep
    step instead of one transaction each. Customers a grant created are settled from the start; those
    of earlier years, or first heard of through a complaint, come this way. A customer whose tier
    differs from an empty history's is left to the full path.
    """
    if not customer_ids:
        return set()
    settled = ledger.settled_without_purchases(policy, now)
    tier = settled.pop("tier")
    never_purchased = ~sa.exists().where(orders.c.customer_id == customers.c.customer_id)
    async with db.transaction() as conn:
        rows = await conn.execute(
            sa.update(customers)
            .where(customers.c.customer_id.in_(customer_ids), customers.c.tier == tier, never_purchased)
            .values(**settled, updated_at=now)
            .returning(customers.c.customer_id)
        )
        return set(rows.scalars())


def sweeper(policy: LoyaltyPolicy, interval: float, batch: int) -> BackgroundTask:
    """The background task the service runs: sweep, then sleep unless the batch was full."""

    async def run(runtime: Runtime) -> None:
        while not runtime.shutting_down:
            try:
                done = await sweep_once(runtime.db, runtime.emitter, policy, batch)
                full = done.expired >= batch or done.refreshed >= batch
            except Exception as exc:
                log.warning("loyalty sweep failed, retrying: %s", exc)
                full = False
            if not full:
                await _nap(runtime, interval)

    return run


async def _nap(runtime: Runtime, seconds: float) -> None:
    """Sleep in short steps so a shutdown does not wait for the whole interval."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not runtime.shutting_down:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return
        await asyncio.sleep(min(left, 0.25))
