"""Recovery's figures: what compensation cost, per customer tier, over a window."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query

from services.recovery.models import compensation_ledger, compensations
from services.recovery.schemas import SpendFigures, TierSpend
from shared.auth import Operator, require_role
from shared.db import utcnow
from shared.events.vocabulary import Role
from shared.problems import FieldError, ProblemError, problem_responses
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["figures"])
Agent = Annotated[Operator, Depends(require_role(Role.AGENT))]
Rt = Annotated[Runtime, Depends(get_runtime)]


@router.get(
    "/figures",
    response_model=SpendFigures,
    responses=problem_responses(401, 422),
    summary="Compensation spent per customer tier over a window",
)
async def spend_figures(
    runtime: Rt,
    _op: Agent,
    since: Annotated[datetime | None, Query(description="Start of the window (default: 24 hours ago)")] = None,
    until: Annotated[datetime | None, Query(description="End of the window (default: now)")] = None,
) -> SpendFigures:
    """Issued compensation per tier at the time of the decision: count, money value and points, with
    reversals in the window subtracted (the ledger is append-only, so a reversal is its own entry)."""
    end = _aware(until) if until else utcnow()
    start = _aware(since) if since else end - timedelta(hours=24)
    if start > end:
        raise ProblemError(422, "Validation failed", "since is after until", code="validation",
                           errors=[FieldError(field="query.since", message="must not be after until")])
    ledger, comp = compensation_ledger.c, compensations.c
    query = (
        sa.select(
            comp.customer_tier,
            ledger.currency,
            sa.func.sum(sa.case((ledger.entry_kind == "issue", 1), else_=0)).label("count"),
            sa.func.coalesce(sa.func.sum(ledger.value_minor), 0).label("value_minor"),
            sa.func.coalesce(sa.func.sum(ledger.points), 0).label("points"),
        )
        .select_from(compensation_ledger.outerjoin(compensations, comp.compensation_id == ledger.compensation_id))
        .where(ledger.issued_at >= start, ledger.issued_at < end)
        .group_by(comp.customer_tier, ledger.currency)
        .order_by(comp.customer_tier)
    )
    async with runtime.db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    by_tier = [
        TierSpend(customer_tier=r.customer_tier, count=int(r.count), value_minor=int(r.value_minor),
                  points=int(r.points), currency=r.currency)
        for r in rows
    ]
    return SpendFigures(since=start, until=end, by_tier=by_tier)


def _aware(moment: datetime) -> datetime:
    """Query times without a zone are read as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
