"""Reading and locking the facts a decision needs: the customer, the case, prior compensations, budgets.

Lock order, the same everywhere so concurrent transactions cannot deadlock each other:
department budget row, then customer row, then (new) compensation rows. Operations on an existing
compensation lock its row first, then the budget row; they never take a customer lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.recovery.caps import PriorCompensation
from services.recovery.models import ACTIVE_STATUSES, budgets, cases, compensation_ledger, compensations, customers
from services.recovery.policy import RecoveryPolicy
from shared.db import insert_ignore, utcnow
from shared.events.vocabulary import CustomerTier

UNASSIGNED = "unassigned"


async def upsert(
    conn: AsyncConnection,
    table: sa.Table,
    values: dict[str, Any],
    keys: Sequence[str],
    update: Sequence[str],
    where: sa.ColumnElement[bool] | None = None,
) -> None:
    """Insert a row or update `update` columns of the existing one (when `where` holds)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(**values)
    if update:
        changes = {c: stmt.excluded[c] for c in update}
        stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=changes, where=where)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    await conn.execute(stmt)


async def lock_customer(conn: AsyncConnection, customer_id: str) -> sa.RowMapping:
    """The customer's projection row, locked until the transaction ends (created when unknown)."""
    await insert_ignore(conn, customers, {"customer_id": customer_id, "tier": None, "updated_at": utcnow()})
    row = (
        (await conn.execute(sa.select(customers).where(customers.c.customer_id == customer_id).with_for_update()))
        .mappings()
        .one()
    )
    return row


def tier_of(projected: str | None, fallback: CustomerTier | str | None) -> CustomerTier:
    """The projected tier, else the tier an event carried, else potential (DOMAIN.md's entry tier)."""
    for value in (projected, fallback):
        if value:
            return CustomerTier(value)
    return CustomerTier.POTENTIAL


async def get_case(conn: AsyncConnection, case_id: str) -> sa.RowMapping | None:
    """The case projection row, or None."""
    return (await conn.execute(sa.select(cases).where(cases.c.case_id == case_id))).mappings().first()


async def prior_compensations(
    conn: AsyncConnection, policy: RecoveryPolicy, customer_id: str, now: datetime, case_id: str | None = None
) -> list[PriorCompensation]:
    """The customer's compensations in the cap window, plus every one of `case_id` (for once-only rules)."""
    since = now - timedelta(days=policy.caps.window_days)
    c = compensations.c
    in_scope = c.created_at >= since if case_id is None else sa.or_(c.created_at >= since, c.case_id == case_id)
    rows = await conn.execute(
        sa.select(c.reason, c.value_minor, c.case_id, c.incident_id, c.status, c.created_at).where(
            c.customer_id == customer_id, in_scope, c.status != "queued"
        )
    )
    return [
        PriorCompensation(
            reason=r.reason,
            value_minor=max(int(r.value_minor), 0),
            case_id=r.case_id,
            incident_id=r.incident_id,
            active=r.status in ACTIVE_STATUSES and r.created_at >= since,
        )
        for r in rows
    ]


async def other_cases_within(
    conn: AsyncConnection, customer_id: str, case_id: str | None, now: datetime, days: int
) -> int:
    """How many other cases the customer opened in the last `days` days (repeat complaints)."""
    query = sa.select(sa.func.count()).where(
        cases.c.customer_id == customer_id, cases.c.routed_at >= now - timedelta(days=days)
    )
    if case_id:
        query = query.where(cases.c.case_id != case_id)
    return int(await conn.scalar(query) or 0)


def budget_key(department: str | None) -> str:
    """The budget row of a department (compensations without one share the default budget)."""
    return department or UNASSIGNED


async def lock_budget(conn: AsyncConnection, policy: RecoveryPolicy, department: str | None, month: str) -> int:
    """What is left of the department's budget this month, with its row locked until commit."""
    key = budget_key(department)
    await insert_ignore(
        conn,
        budgets,
        {"department": key, "month": month, "spent_minor": 0, "reserved_minor": 0, "updated_at": utcnow()},
    )
    row = (
        await conn.execute(
            sa.select(budgets.c.spent_minor, budgets.c.reserved_minor)
            .where(budgets.c.department == key, budgets.c.month == month)
            .with_for_update()
        )
    ).one()
    return policy.budgets.monthly_for(department) - int(row.spent_minor) - int(row.reserved_minor)


async def move_budget(
    conn: AsyncConnection, department: str | None, month: str, *, reserved: int = 0, spent: int = 0
) -> None:
    """Add to a budget row's reserved and spent figures (negative releases)."""
    if not reserved and not spent:
        return
    key = budget_key(department)
    await insert_ignore(
        conn,
        budgets,
        {"department": key, "month": month, "spent_minor": 0, "reserved_minor": 0, "updated_at": utcnow()},
    )
    await conn.execute(
        sa.update(budgets)
        .where(budgets.c.department == key, budgets.c.month == month)
        .values(
            reserved_minor=budgets.c.reserved_minor + reserved,
            spent_minor=budgets.c.spent_minor + spent,
            updated_at=utcnow(),
        )
    )


async def lock_compensation(conn: AsyncConnection, compensation_id: str) -> sa.RowMapping | None:
    """A compensation row locked until commit, or None."""
    return (
        (
            await conn.execute(
                sa.select(compensations).where(compensations.c.compensation_id == compensation_id).with_for_update()
            )
        )
        .mappings()
        .first()
    )


async def ledger_entries(conn: AsyncConnection, compensation_id: str) -> list[sa.RowMapping]:
    """The ledger entries of one compensation, oldest first."""
    rows = await conn.execute(
        sa.select(compensation_ledger)
        .where(compensation_ledger.c.compensation_id == compensation_id)
        .order_by(compensation_ledger.c.issued_at)
    )
    return list(rows.mappings())
