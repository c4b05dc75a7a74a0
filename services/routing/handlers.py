"""Routing's event handlers."""

import uuid
from datetime import timedelta

import sqlalchemy as sa

from services.routing.models import cases, customer_tiers
from shared.consumer import Handler, HandlerContext
from shared.db import utcnow
from shared.events import EventData
from shared.events.cases import CaseRouted, Deadlines
from shared.events.complaints import ComplaintReceived
from shared.events.loyalty import TierChanged
from shared.events.vocabulary import Category, CustomerTier, Severity

_RESPONSE_HOURS = {Severity.P2: 2, Severity.P3: 4}


async def on_complaint_received(ctx: HandlerContext, event: EventData) -> None:
    """Open a case with a severity and deadlines, and publish ``case.routed.v1``."""
    assert isinstance(event, ComplaintReceived)
    tier = await ctx.conn.scalar(
        sa.select(customer_tiers.c.tier).where(customer_tiers.c.customer_id == event.customer_id)
    )
    urgent = event.classification.category is Category.ACCOUNT_ANOMALY or bool(event.classification.urgency_cues)
    severity = Severity.P2 if urgent else Severity.P3
    now = utcnow()
    deadlines = Deadlines(
        first_response_due=now + timedelta(hours=_RESPONSE_HOURS[severity]),
        resolution_due=now + timedelta(hours=24),
    )
    case_id = str(uuid.uuid4())
    await ctx.conn.execute(
        sa.insert(cases).values(
            id=case_id,
            complaint_id=event.complaint_id,
            customer_id=event.customer_id,
            category=event.classification.category.value,
            severity=severity.value,
            queue="product_support",
            state="open",
            customer_tier=tier or CustomerTier.POTENTIAL.value,
            received_at=event.received_at,
            routed_at=now,
            first_response_due=deadlines.first_response_due,
            resolution_due=deadlines.resolution_due,
        )
    )
    await ctx.emit(
        CaseRouted(
            case_id=case_id,
            complaint_id=event.complaint_id,
            customer_id=event.customer_id,
            severity=severity,
            severity_reasons=["urgent category or cue" if urgent else "regular"],
            category=event.classification.category,
            queue="product_support",
            customer_tier=CustomerTier(tier or CustomerTier.POTENTIAL),
            deadlines=deadlines,
            received_at=event.received_at,
            routed_at=now,
        ),
        subject=case_id,
    )


async def on_tier_changed(ctx: HandlerContext, event: EventData) -> None:
    """Keep the projection of the customer's tier."""
    assert isinstance(event, TierChanged)
    table = customer_tiers
    updated = await ctx.conn.execute(
        sa.update(table)
        .where(table.c.customer_id == event.customer_id)
        .values(tier=event.to_tier.value, updated_at=event.changed_at)
    )
    if not updated.rowcount:
        await ctx.conn.execute(
            sa.insert(table).values(
                customer_id=event.customer_id, tier=event.to_tier.value, updated_at=event.changed_at
            )
        )


HANDLERS: dict[str, Handler] = {
    ComplaintReceived.event_type: on_complaint_received,
    TierChanged.event_type: on_tier_changed,
}
