"""Routing's event handlers and its SLA timer handler.

``complaint.received.v1`` becomes a case (tier, queue, three clocks) in the consumer's
transaction; ``complaint.followed_up.v1`` escalates at once; ``loyalty.tier_changed.v1`` feeds
the customer-tier projection. A fetch's consecutive complaint events are handled as one run: two
reads and one write per table for the whole run, in fetch order (the consumer's batch form).
The SLA timer fires warnings and breaches, claimed with ``FOR UPDATE SKIP LOCKED`` by the shared
timer worker, so N replicas act once.
"""

import functools
import logging
import uuid
from collections.abc import Collection
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.routing import escalation, lifecycle, store
from services.routing.case import CaseSnapshot
from services.routing.models import customer_tiers
from services.routing.policy import RoutingPolicy
from services.routing.sla import TimerSpec
from shared.consumer import BatchableHandler, Handler, HandlerContext
from shared.db import Database, any_of_param, utcnow
from shared.envelope import Envelope
from shared.events import EventData
from shared.events.complaints import ComplaintFollowedUp, ComplaintReceived
from shared.events.loyalty import TierChanged
from shared.events.vocabulary import CustomerTier
from shared.timers import TimerContext, TimerHandler, schedule

log = logging.getLogger(__name__)
EXCERPT_CHARS = 280
ComplaintEvent = ComplaintReceived | ComplaintFollowedUp


@functools.cache
def _tiers_query(dialect: str) -> sa.Select[Any]:
    return sa.select(customer_tiers.c.customer_id, customer_tiers.c.tier).where(
        any_of_param(customer_tiers.c.customer_id, "customer_ids", dialect)
    )


async def customer_tiers_of(conn: AsyncConnection, customer_ids: Collection[str]) -> dict[str, CustomerTier]:
    """The projected tier of each customer (one statement); potential until loyalty says otherwise."""
    found: dict[str, CustomerTier] = {}
    if customer_ids:
        query = _tiers_query(conn.dialect.name)
        rows = await conn.execute(query, {"customer_ids": list(customer_ids)})
        found = {customer_id: CustomerTier(tier) for customer_id, tier in rows}
    return {cid: found.get(cid, CustomerTier.POTENTIAL) for cid in customer_ids}


def _emitter(ctx: HandlerContext | TimerContext, subject: str) -> store.Emit:
    async def emit(data: EventData) -> Envelope:
        return await ctx.emit(data, subject=subject)

    return emit


class _Run:
    """One run of complaint events in fetch order, handled against the cases as the run changes them."""

    def __init__(self, policy: RoutingPolicy, db: Database) -> None:
        self.policy = policy
        self.writer = store.CaseWriter(db, policy)
        self.cases: dict[str, CaseSnapshot] = {}  # by complaint id: as stored, then as this run left them
        self.tiers: dict[str, CustomerTier] = {}

    async def load(self, conn: AsyncConnection, events: list[ComplaintEvent]) -> None:
        """Read what the run needs with two statements: the customers' tiers and the complaints' cases."""
        self.tiers = await customer_tiers_of(conn, {e.customer_id for e in events if isinstance(e, ComplaintReceived)})
        rows = await store.load_rows_by_complaint(conn, {e.complaint_id for e in events})
        self.cases = {row["complaint_id"]: store.snapshot_of(row) for row in rows}

    async def received(self, ctx: HandlerContext, event: ComplaintReceived) -> None:
        """Open a case with a tier, a queue and three deadlines; publish ``case.routed.v1``."""
        if event.complaint_id in self.cases:
            log.info("complaint %s is already a case", event.complaint_id)
            return
        now = utcnow()
        outcome = lifecycle.route(event, self.tiers[event.customer_id], str(uuid.uuid4()), now, self.policy)
        extra = {"channel": event.channel.value, "subject": event.subject, "excerpt": event.text[:EXCERPT_CHARS]}
        await self.writer.record(ctx.conn, outcome, _emitter(ctx, outcome.case.case_id), now, new_case=extra)
        self.cases[event.complaint_id] = outcome.case

    async def followed_up(self, ctx: HandlerContext, event: ComplaintFollowedUp) -> None:
        """The customer wrote again: escalate at once (or resume, when we were waiting on them)."""
        case = self.cases.get(event.complaint_id)
        if case is None:
            log.warning("follow-up for complaint %s that has no case", event.complaint_id)
            return
        now = utcnow()
        outcome = escalation.follow_up(case, now, self.policy, event.follow_up_count)
        await self.writer.record(ctx.conn, outcome, _emitter(ctx, case.case_id), now)
        self.cases[event.complaint_id] = outcome.case


def make_handlers(policy: RoutingPolicy) -> dict[str, Handler]:
    """The event handlers, bound to the routing policy.

    New complaints and follow-ups share one batch form: a run of them reads the customers' tiers
    and the complaints' cases with one statement each and writes each table once, with the same
    effects, in the same order, as handling them one by one.
    """

    async def on_complaints(events: list[tuple[HandlerContext, EventData]]) -> None:
        """Route new complaints and escalate on follow-ups, in fetch order."""
        conn = events[0][0].conn
        run = _Run(policy, events[0][0].emitter.db)
        complaints = [event for _, event in events]
        assert all(isinstance(event, ComplaintReceived | ComplaintFollowedUp) for event in complaints)
        await run.load(conn, complaints)  # type: ignore[arg-type]
        for ctx, event in events:
            if isinstance(event, ComplaintReceived):
                await run.received(ctx, event)
            else:
                await run.followed_up(ctx, event)  # type: ignore[arg-type]
        await run.writer.flush(conn, defer=True)

    async def on_complaint(ctx: HandlerContext, event: EventData) -> None:
        """One complaint event: a run of one."""
        await on_complaints([(ctx, event)])

    complaints = BatchableHandler(one=on_complaint, many=on_complaints)
    return {
        ComplaintReceived.event_type: complaints,
        ComplaintFollowedUp.event_type: complaints,
        TierChanged.event_type: on_tier_changed,
    }


@functools.cache
def _tier_upsert(dialect: str) -> sa.Insert:
    """Insert a customer's tier, or replace it unless the stored one is newer: one statement."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(customer_tiers)
    return statement.on_conflict_do_update(
        index_elements=[customer_tiers.c.customer_id],
        set_={"tier": statement.excluded.tier, "updated_at": statement.excluded.updated_at},
        where=customer_tiers.c.updated_at <= statement.excluded.updated_at,
    )


async def on_tier_changed(ctx: HandlerContext, event: EventData) -> None:
    """Keep the projection of the customer's tier; an older change never overwrites a newer one."""
    assert isinstance(event, TierChanged)
    values = {"customer_id": event.customer_id, "tier": event.to_tier.value, "updated_at": event.changed_at}
    await ctx.conn.execute(_tier_upsert(ctx.conn.dialect.name), values)


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
