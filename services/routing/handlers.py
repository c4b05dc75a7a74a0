"""Routing's event handlers and its SLA timer handler.

``complaint.received.v1`` becomes a case (tier, queue, three clocks) in the consumer's
transaction; ``complaint.followed_up.v1`` escalates at once; ``loyalty.tier_changed.v1`` feeds
the customer-tier projection. The SLA timer fires warnings and breaches, claimed with
``FOR UPDATE SKIP LOCKED`` by the shared timer worker, so N replicas act once.
"""

import logging
import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.routing import escalation, lifecycle, store
from services.routing.models import customer_tiers
from services.routing.policy import RoutingPolicy
from services.routing.sla import TimerSpec
from shared.consumer import Handler, HandlerContext
from shared.db import insert_ignore, utcnow
from shared.envelope import Envelope
from shared.events import EventData
from shared.events.complaints import ComplaintFollowedUp, ComplaintReceived
from shared.events.loyalty import TierChanged
from shared.events.vocabulary import CustomerTier
from shared.timers import TimerContext, TimerHandler, schedule

log = logging.getLogger(__name__)
EXCERPT_CHARS = 280


async def customer_tier(conn: AsyncConnection, customer_id: str) -> CustomerTier:
    """The customer's tier from the projection; potential until loyalty says otherwise."""
    tier = await conn.scalar(sa.select(customer_tiers.c.tier).where(customer_tiers.c.customer_id == customer_id))
    return CustomerTier(tier) if tier else CustomerTier.POTENTIAL


def _emitter(ctx: HandlerContext | TimerContext, subject: str) -> store.Emit:
    async def emit(data: EventData) -> Envelope:
        return await ctx.emit(data, subject=subject)

    return emit


def make_handlers(policy: RoutingPolicy) -> dict[str, Handler]:
    """The event handlers, bound to the routing policy."""

    async def on_complaint_received(ctx: HandlerContext, event: EventData) -> None:
        """Open a case with a tier, a queue and three deadlines; publish ``case.routed.v1``."""
        assert isinstance(event, ComplaintReceived)
        if await store.load_row(ctx.conn, complaint_id=event.complaint_id) is not None:
            log.info("complaint %s is already a case", event.complaint_id)
            return
        tier = await customer_tier(ctx.conn, event.customer_id)
        now = utcnow()
        outcome = lifecycle.route(event, tier, str(uuid.uuid4()), now, policy)
        extra = {"channel": event.channel.value, "subject": event.subject, "excerpt": event.text[:EXCERPT_CHARS]}
        await store.save_outcome(
            ctx.conn, ctx.emitter.db, outcome, _emitter(ctx, outcome.case.case_id), policy, now, new_case=extra
        )

    async def on_followed_up(ctx: HandlerContext, event: EventData) -> None:
        """The customer wrote again: escalate at once (or resume, when we were waiting on them)."""
        assert isinstance(event, ComplaintFollowedUp)
        row = await store.load_row(ctx.conn, complaint_id=event.complaint_id, lock=True)
        if row is None:
            log.warning("follow-up for complaint %s that has no case", event.complaint_id)
            return
        now = utcnow()
        outcome = escalation.follow_up(store.snapshot_of(row), now, policy, event.follow_up_count)
        await store.save_outcome(ctx.conn, ctx.emitter.db, outcome, _emitter(ctx, row["id"]), policy, now)

    return {
        ComplaintReceived.event_type: on_complaint_received,
        ComplaintFollowedUp.event_type: on_followed_up,
        TierChanged.event_type: on_tier_changed,
    }


async def on_tier_changed(ctx: HandlerContext, event: EventData) -> None:
    """Keep the projection of the customer's tier; an older change never overwrites a newer one."""
    assert isinstance(event, TierChanged)
    values = {"customer_id": event.customer_id, "tier": event.to_tier.value, "updated_at": event.changed_at}
    if await insert_ignore(ctx.conn, customer_tiers, values):
        return
    await ctx.conn.execute(
        sa.update(customer_tiers)
        .where(customer_tiers.c.customer_id == event.customer_id, customer_tiers.c.updated_at <= event.changed_at)
        .values(tier=event.to_tier.value, updated_at=event.changed_at)
    )


def make_timer_handlers(policy: RoutingPolicy, busy_retry: timedelta) -> dict[str, TimerHandler]:
    """The SLA timer handler, bound to the routing policy."""

    async def on_sla_timer(ctx: TimerContext) -> None:
        """A warning or breach is due: act on it unless a later change made it stale."""
        case_id = str(ctx.payload["case_id"])
        timer = TimerSpec.model_validate({k: ctx.payload[k] for k in ("kind", "clock", "due_at")})
        db = ctx.emitter.db
        # Never wait for a case an operator is changing: that is how two lock orders deadlock.
        row = await store.load_row(ctx.conn, case_id=case_id, lock=True, skip_locked=True)
        if row is None:
            if await store.case_exists(ctx.conn, case_id):
                retry_key = f"{ctx.key}/retry-{uuid.uuid4().hex[:8]}"
                await schedule(ctx.conn, db, ctx.kind, retry_key, utcnow() + busy_retry, ctx.payload)
            return
        case = store.snapshot_of(row)
        now = max(utcnow(), timer.due_at)
        outcome = escalation.on_timer(case, timer, now, policy)
        if outcome is None:
            await store.schedule_timers(ctx.conn, db, case, policy)
            return
        await store.save_outcome(ctx.conn, db, outcome, _emitter(ctx, case_id), policy, now)

    return {store.SLA_TIMER: on_sla_timer}
