"""Loyalty's event handlers."""

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.loyalty.models import balances, points_ledger
from shared.consumer import Handler, HandlerContext
from shared.db import insert_ignore, utcnow
from shared.events import EventData
from shared.events.compensation import CompensationIssued
from shared.events.loyalty import PointsChanged


async def add_to_balance(conn: AsyncConnection, customer_id: str, points: int) -> int:
    """Change a customer's balance under a row lock; returns the new balance."""
    await insert_ignore(conn, balances, {"customer_id": customer_id, "points": 0})
    current = await conn.scalar(
        sa.select(balances.c.points).where(balances.c.customer_id == customer_id).with_for_update()
    )
    new_balance = int(current or 0) + points
    await conn.execute(sa.update(balances).where(balances.c.customer_id == customer_id).values(points=new_balance))
    return new_balance


async def on_compensation_issued(ctx: HandlerContext, event: EventData) -> None:
    """Grant the points of an issued compensation, once per compensation."""
    assert isinstance(event, CompensationIssued)
    if event.remedy.points <= 0:
        return
    balance = await add_to_balance(ctx.conn, event.customer_id, event.remedy.points)
    entry_id = str(uuid.uuid4())
    await ctx.conn.execute(
        sa.insert(points_ledger).values(
            id=entry_id, customer_id=event.customer_id, kind="earn", points=event.remedy.points,
            balance_after=balance, reason=f"compensation: {event.reason}", compensation_id=event.compensation_id,
            created_at=utcnow(),
        )
    )
    await ctx.emit(
        PointsChanged(
            customer_id=event.customer_id, entry_id=entry_id, kind="earn", points=event.remedy.points,
            balance=balance, reason=f"compensation: {event.reason}", compensation_id=event.compensation_id,
            case_id=event.case_id,
        ),
        subject=event.customer_id,
    )


HANDLERS: dict[str, Handler] = {CompensationIssued.event_type: on_compensation_issued}
