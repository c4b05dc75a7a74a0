"""Recovery's event handlers."""

import uuid

import sqlalchemy as sa

from services.recovery.models import compensation_ledger
from shared.consumer import Handler, HandlerContext
from shared.db import insert_ignore, utcnow
from shared.events import EventData
from shared.events.cases import CaseResolved
from shared.events.compensation import CompensationIssued, Remedy
from shared.events.vocabulary import Severity

_POINTS_BY_SEVERITY = {Severity.P1: 500, Severity.P2: 300, Severity.P3: 100, Severity.P4: 50}


async def on_case_resolved(ctx: HandlerContext, event: EventData) -> None:
    """Issue goodwill points for a resolved case, once per case."""
    assert isinstance(event, CaseResolved)
    compensation_id = str(uuid.uuid4())
    remedy = Remedy(
        option_id="points", kind="points", points=_POINTS_BY_SEVERITY[event.severity], description="goodwill points"
    )
    now = utcnow()
    issued = await insert_ignore(
        ctx.conn,
        compensation_ledger,
        {
            "id": compensation_id,
            "customer_id": event.customer_id,
            "case_id": event.case_id,
            "reason": "case_resolved",
            "kind": remedy.kind,
            "amount_minor": 0,
            "currency": remedy.currency,
            "points": remedy.points,
            "issued_at": now,
        },
    )
    if not issued:
        return
    await ctx.emit(
        CompensationIssued(
            compensation_id=compensation_id,
            customer_id=event.customer_id,
            case_id=event.case_id,
            reason="case_resolved",
            remedy=remedy,
            customer_tier=event.customer_tier,
            issued_at=now,
            reasons=[f"{event.severity.value} case resolved"],
        ),
        subject=event.case_id,
    )


HANDLERS: dict[str, Handler] = {CaseResolved.event_type: on_case_resolved}


async def list_for_customer(conn, customer_id: str) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """A customer's ledger, newest first."""
    rows = await conn.execute(
        sa.select(compensation_ledger)
        .where(compensation_ledger.c.customer_id == customer_id)
        .order_by(compensation_ledger.c.issued_at.desc())
    )
    return [dict(r) for r in rows.mappings()]
