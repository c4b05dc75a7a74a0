"""Loyalty's HTTP routes."""

import sqlalchemy as sa
from fastapi import APIRouter, Depends

from services.loyalty.models import balances, points_ledger
from shared.problems import problem_responses
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["loyalty"])


@router.get("/customers/{customer_id}/loyalty", responses=problem_responses(404), summary="A customer's loyalty view")
async def loyalty_view(customer_id: str, runtime: Runtime = Depends(get_runtime)) -> dict[str, object]:
    """Points balance and the latest ledger entries."""
    async with runtime.db.engine.connect() as conn:
        balance = await conn.scalar(sa.select(balances.c.points).where(balances.c.customer_id == customer_id))
        rows = await conn.execute(
            sa.select(points_ledger).where(points_ledger.c.customer_id == customer_id)
            .order_by(points_ledger.c.created_at.desc()).limit(50)
        )
        return {"customer_id": customer_id, "balance": int(balance or 0), "ledger": [dict(r) for r in rows.mappings()]}
