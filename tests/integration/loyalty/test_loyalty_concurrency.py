"""The ledger under heavy concurrency on PostgreSQL: many transactions at once on one customer."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from services.loyalty import ledger
from services.loyalty.models import customers, delivery, points_lots
from services.loyalty.models import ledger as ledger_table
from services.loyalty.points import InsufficientPointsError
from services.loyalty.policy import default_policy
from shared.db import Database, utcnow
from shared.outbox import Emitter
from tests.integration.loyalty.helpers import new_id


@pytest.fixture
async def database(loyalty_env: dict[str, str]) -> AsyncIterator[Database]:
    """Loyalty's schema with a pool wide enough for 30 transactions at once."""
    engine = create_async_engine(
        loyalty_env["DATABASE_URL"], pool_size=30, max_overflow=0,
        connect_args={"server_settings": {"search_path": "loyalty"}},
    )
    yield Database(engine, delivery, "loyalty")
    await engine.dispose()


async def _in_tx(db: Database, work):  # type: ignore[no-untyped-def]
    emitter = Emitter(db, source="/test/loyalty")
    async with db.transaction() as conn:
        tx = ledger.Tx(conn=conn, emit=lambda data, subject: emitter.emit(conn, data, subject=subject,
                                                                         correlation_id="concurrency-test"),
                       policy=default_policy(), db=db, now=utcnow(), correlation_id="concurrency-test")
        return await work(tx)


async def test_concurrent_debits_and_credits_keep_the_ledger_exact(database: Database) -> None:
    customer_id = new_id("cust")
    for i in range(10):  # ten lots of 100
        await _in_tx(database, lambda tx, i=i: ledger.credit(tx, customer_id, 100, "seed",
                                                             source_key=f"{customer_id}:{i}"))

    async def redeem() -> bool:
        try:
            await _in_tx(database, lambda tx: ledger.debit(tx, customer_id, 37, "redeem", "race"))
            return True
        except InsufficientPointsError:
            return False

    async def grant(n: int) -> None:
        await _in_tx(database, lambda tx: ledger.credit(tx, customer_id, 1, "race", source_key=f"{customer_id}:g{n}"))

    outcomes = await asyncio.gather(*[redeem() for _ in range(40)], *[grant(n) for n in range(5)])
    succeeded = sum(1 for o in outcomes[:40] if o)
    # 1,005 points hold 27 redemptions of 37 (999 points) whenever the grants land, never a 28th.
    assert succeeded == 27
    async with database.engine.connect() as conn:
        balance = await conn.scalar(sa.select(customers.c.balance).where(customers.c.customer_id == customer_id))
        total = await conn.scalar(sa.select(sa.func.sum(ledger_table.c.points))
                                  .where(ledger_table.c.customer_id == customer_id))
        left = await conn.scalar(sa.select(sa.func.sum(points_lots.c.remaining))
                                 .where(points_lots.c.customer_id == customer_id))
        lowest = await conn.scalar(sa.select(sa.func.min(ledger_table.c.balance_after))
                                   .where(ledger_table.c.customer_id == customer_id))
    assert balance == total == left == 1_005 - 27 * 37
    assert lowest >= 0
