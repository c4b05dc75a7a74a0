"""Loyalty's event consumers and timer handlers.

Every handler runs inside the consumer's transaction with the event id recorded in the inbox, so a
redelivered event has no second effect; each effect also carries its own key (order id, refund,
compensation id, case resolution) so the same fact published twice under new ids counts once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from services.loyalty import accounts, feedback, ledger, outreach
from services.loyalty.ledger import Tx
from services.loyalty.policy import LoyaltyPolicy
from shared.consumer import BatchableHandler, Handler, HandlerContext
from shared.db import utcnow
from shared.events import EventData
from shared.events.cases import CaseReopened, CaseResolved, CaseSlaBreached
from shared.events.compensation import CompensationIssued, CompensationReversed
from shared.events.complaints import ComplaintReceived
from shared.events.orders import OrderCompleted, OrderRefunded
from shared.timers import TimerContext, TimerHandler

Effect = Callable[[Tx, EventData], Awaitable[None]]
BatchEffect = Callable[[Sequence[tuple[Tx, EventData]]], Awaitable[None]]


def handler_tx(ctx: HandlerContext, policy: LoyaltyPolicy, now: datetime | None = None) -> Tx:
    """A unit of work in the consumer's transaction; events carry the incoming event's ids."""
    return Tx(
        conn=ctx.conn,
        emit=lambda data, subject: ctx.emit(data, subject=subject),
        policy=policy,
        db=ctx.emitter.db,
        now=now or utcnow(),
        correlation_id=ctx.envelope.correlationid,
    )


def timer_tx(ctx: TimerContext, policy: LoyaltyPolicy) -> Tx:
    """A unit of work in the timer worker's transaction."""
    return Tx(
        conn=ctx.conn,
        emit=lambda data, subject: ctx.emit(data, subject=subject),
        policy=policy,
        db=ctx.emitter.db,
        now=utcnow(),
        correlation_id=str(ctx.payload.get("correlation_id") or ctx.key),
    )


async def on_compensation_issued(tx: Tx, event: EventData) -> None:
    """Grant the compensation's points once; after a recovery for a low score, plan the follow-up survey."""
    assert isinstance(event, CompensationIssued)
    if event.remedy.points > 0:
        await ledger.credit(
            tx,
            event.customer_id,
            event.remedy.points,
            f"compensation: {event.reason}",
            source_key=f"compensation:{event.compensation_id}",
            compensation_id=event.compensation_id,
            case_id=event.case_id,
        )
    if event.reason == "low_survey":
        await outreach.schedule_recovery_survey(tx, event.customer_id, event.case_id, event.compensation_id)


async def on_compensations_issued(items: Sequence[tuple[Tx, EventData]]) -> None:
    """`on_compensation_issued` of a run of events at once: every grant in a handful of statements."""
    events: list[tuple[Tx, CompensationIssued]] = []
    for tx, event in items:
        assert isinstance(event, CompensationIssued)
        events.append((tx, event))
    await ledger.credit_many(
        [
            ledger.Credit(
                tx,
                event.customer_id,
                event.remedy.points,
                f"compensation: {event.reason}",
                source_key=f"compensation:{event.compensation_id}",
                refs={"compensation_id": event.compensation_id, "case_id": event.case_id},
            )
            for tx, event in events
            if event.remedy.points > 0
        ]
    )
    # Follow-up surveys touch neither points nor customers, so they may come after every grant.
    for tx, event in events:
        if event.reason == "low_survey":
            await outreach.schedule_recovery_survey(tx, event.customer_id, event.case_id, event.compensation_id)


async def on_compensation_reversed(tx: Tx, event: EventData) -> None:
    """Take back a reversed compensation's points (never below zero), once."""
    assert isinstance(event, CompensationReversed)
    if event.remedy.points <= 0:
        return
    granted = f"compensation:{event.compensation_id}"
    await ledger.reverse(
        tx,
        event.customer_id,
        event.remedy.points,
        f"compensation reversed by {event.reversed_by}",
        source_key=f"compensation-reversal:{event.compensation_id}",
        prefer_lot=await ledger.lot_of_source(tx.conn, granted),
        compensation_id=event.compensation_id,
        case_id=event.case_id,
    )


async def on_order_completed(tx: Tx, event: EventData) -> None:
    """Points for the purchase, then tier, award, referral and benefits."""
    assert isinstance(event, OrderCompleted)
    await accounts.record_order(tx, event)


async def on_order_refunded(tx: Tx, event: EventData) -> None:
    """Take back the refunded share of the points, then recompute the tier."""
    assert isinstance(event, OrderRefunded)
    await accounts.record_refund(tx, event)


async def on_case_resolved(tx: Tx, event: EventData) -> None:
    """Send the satisfaction survey, schedule care on days 3 and 7, and check for churn after a breach."""
    assert isinstance(event, CaseResolved)
    known, tier = await accounts.purchase_tier(tx.conn, event.customer_id)
    if not known:
        await ledger.ensure_customer(tx, event.customer_id)
    await feedback.issue_survey(
        tx,
        customer_id=event.customer_id,
        case_id=event.case_id,
        source_key=f"case:{event.case_id}:{event.resolved_at.isoformat()}",
        tier=tier or event.customer_tier,  # loyalty's tier once the customer has purchased, else the case's
        queue=event.queue,
        category=event.category.value,
    )
    await outreach.schedule_followups(tx, event.customer_id, event.case_id, event.resolved_at)
    if event.sla_breached:
        await outreach.evaluate_churn(
            tx, event.customer_id, sla_breached=True, case_id=event.case_id, tier_hint=event.customer_tier
        )


async def on_case_reopened(tx: Tx, event: EventData) -> None:
    """A reopened case is not resolved any more: its care follow-ups are cancelled."""
    assert isinstance(event, CaseReopened)
    await outreach.cancel_followups(tx, case_id=event.case_id)


async def on_sla_breached(tx: Tx, event: EventData) -> None:
    """A breach on a high-value customer is a churn signal."""
    assert isinstance(event, CaseSlaBreached)
    await outreach.evaluate_churn(
        tx, event.customer_id, sla_breached=True, case_id=event.case_id, tier_hint=event.customer_tier
    )


async def on_complaint_received(tx: Tx, event: EventData) -> None:
    """The customer complained again: cancel pending care follow-ups and check the complaint rate."""
    assert isinstance(event, ComplaintReceived)
    if not await outreach.record_complaint(tx, event.complaint_id, event.customer_id, event.received_at):
        return
    await outreach.cancel_followups(tx, customer_id=event.customer_id)
    await outreach.evaluate_churn(tx, event.customer_id)


async def on_complaints_received(items: Sequence[tuple[Tx, EventData]]) -> None:
    """`on_complaint_received` of a run of events at once: a handful of statements for the whole run."""
    complaints: list[outreach.Complaint] = []
    for tx, event in items:
        assert isinstance(event, ComplaintReceived)
        complaints.append(outreach.Complaint(tx, event.complaint_id, event.customer_id, event.received_at))
    await outreach.receive_complaints(complaints)


# Effects with a batch form that has the same result as the effect applied to each event in order.
BATCH_EFFECTS: dict[str, BatchEffect] = {
    CompensationIssued.event_type: on_compensations_issued,
    ComplaintReceived.event_type: on_complaints_received,
}

EFFECTS: dict[str, Effect] = {
    CompensationIssued.event_type: on_compensation_issued,
    CompensationReversed.event_type: on_compensation_reversed,
    OrderCompleted.event_type: on_order_completed,
    OrderRefunded.event_type: on_order_refunded,
    CaseResolved.event_type: on_case_resolved,
    CaseReopened.event_type: on_case_reopened,
    CaseSlaBreached.event_type: on_sla_breached,
    ComplaintReceived.event_type: on_complaint_received,
}


def build_handlers(policy: LoyaltyPolicy) -> dict[str, Handler]:
    """Consumer handlers bound to the loaded policy."""

    def bind(effect: Effect) -> Handler:
        async def handle(ctx: HandlerContext, event: EventData) -> None:
            await effect(handler_tx(ctx, policy), event)

        return handle

    def bind_batch(one: Handler, effect: BatchEffect) -> Handler:
        async def handle_many(events: list[tuple[HandlerContext, EventData]]) -> None:
            now = utcnow()  # one instant for the whole run, as one event's effects share one
            await effect([(handler_tx(ctx, policy, now), event) for ctx, event in events])

        return BatchableHandler(one=one, many=handle_many)

    handlers = {event_type: bind(effect) for event_type, effect in EFFECTS.items()}
    for event_type, batch_effect in BATCH_EFFECTS.items():
        handlers[event_type] = bind_batch(handlers[event_type], batch_effect)
    return handlers


def build_timer_handlers(policy: LoyaltyPolicy) -> dict[str, TimerHandler]:
    """Timer handlers bound to the loaded policy."""

    async def followup(ctx: TimerContext) -> None:
        await outreach.fire_followup(timer_tx(ctx, policy), ctx.key, ctx.payload, ctx.due_at)

    async def recovery_survey(ctx: TimerContext) -> None:
        await outreach.issue_recovery_survey(timer_tx(ctx, policy), ctx.payload)

    return {outreach.FOLLOWUP_TIMER: followup, outreach.RECOVERY_SURVEY_TIMER: recovery_survey}
