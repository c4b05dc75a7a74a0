"""Recovery's event handlers: case and customer projections, and the three case triggers.

- case.resolved.v1: compensation for the case (tier x severity, with modifiers);
- case.sla_breached.v1: the delay's own remedy at once, when the policy says so;
- survey.answered.v1: goodwill after a low CSAT or an NPS detractor, once per case;
- loyalty.tier_changed.v1: the tier (and region) projection used by decisions and segments.
Redelivered events are absorbed by the inbox; a second event for the same (case, reason) finds
the first compensation and does nothing (the unique constraint is the last guard).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from services.recovery.decision import is_low_survey
from services.recovery.flow import OFFER_TIMER, Trigger, expire, open_compensation
from services.recovery.models import cases, customers
from services.recovery.policy import RecoveryPolicy
from services.recovery.store import get_case, tier_of, upsert
from shared.consumer import Handler, HandlerContext
from shared.db import utcnow
from shared.envelope import Envelope
from shared.events import EventData
from shared.events.cases import (
    CaseEscalated,
    CaseHandedOff,
    CaseReopened,
    CaseResolved,
    CaseRouted,
    CaseSlaBreached,
)
from shared.events.loyalty import SurveyAnswered, TierChanged
from shared.events.vocabulary import Severity
from shared.timers import TimerContext, TimerHandler

CASE_COLUMNS = ("severity", "category", "customer_tier", "department", "queue", "state", "routed_at", "updated_at")


def _emitter(ctx: HandlerContext) -> Callable[[EventData, str | None], Awaitable[Envelope]]:
    async def emit(data: EventData, subject: str | None) -> Envelope:
        return await ctx.emit(data, subject=subject)

    return emit


async def _update_case(ctx: HandlerContext, case_id: str, **values: Any) -> None:
    await ctx.conn.execute(sa.update(cases).where(cases.c.case_id == case_id).values(**values, updated_at=utcnow()))


def make_handlers(policy: RecoveryPolicy) -> dict[str, Handler]:
    """The consumers of recovery, bound to the policy loaded at start."""

    async def on_case_routed(ctx: HandlerContext, event: EventData) -> None:
        assert isinstance(event, CaseRouted)
        values = {
            "case_id": event.case_id,
            "complaint_id": event.complaint_id,
            "customer_id": event.customer_id,
            "severity": event.severity.value,
            "category": event.category.value,
            "customer_tier": event.customer_tier.value,
            "department": event.departments[0].value if event.departments else None,
            "queue": event.queue,
            "state": "open",
            "correlation_id": ctx.envelope.correlationid,
            "routed_at": event.routed_at,
            "updated_at": utcnow(),
        }
        await upsert(ctx.conn, cases, values, ["case_id"], CASE_COLUMNS)

    async def on_case_escalated(ctx: HandlerContext, event: EventData) -> None:
        assert isinstance(event, CaseEscalated)
        await _update_case(ctx, event.case_id, severity=event.to_severity.value)

    async def on_case_handed_off(ctx: HandlerContext, event: EventData) -> None:
        assert isinstance(event, CaseHandedOff)
        await _update_case(ctx, event.case_id, queue=event.to_queue)

    async def on_case_reopened(ctx: HandlerContext, event: EventData) -> None:
        assert isinstance(event, CaseReopened)
        await _update_case(ctx, event.case_id, state="reopened")

    async def on_case_resolved(ctx: HandlerContext, event: EventData) -> None:
        assert isinstance(event, CaseResolved)
        known = await get_case(ctx.conn, event.case_id)
        department = event.department or (known["department"] if known else None)
        values = {
            "case_id": event.case_id,
            "complaint_id": event.complaint_id,
            "customer_id": event.customer_id,
            "severity": event.severity.value,
            "category": event.category.value,
            "customer_tier": event.customer_tier.value,
            "department": department,
            "queue": event.queue,
            "state": "resolved",
            "first_handling": event.first_handling,
            "sla_breached": event.sla_breached or bool(known and known["sla_breached"]),
            "resolution_code": event.resolution_code,
            "correlation_id": ctx.envelope.correlationid,
            "resolved_at": event.resolved_at,
            "updated_at": utcnow(),
        }
        await upsert(
            ctx.conn,
            cases,
            values,
            ["case_id"],
            [
                "severity",
                "department",
                "queue",
                "state",
                "first_handling",
                "sla_breached",
                "resolution_code",
                "resolved_at",
                "updated_at",
            ],
        )
        trigger = Trigger(
            customer_id=event.customer_id,
            reason="case_resolved",
            correlation_id=ctx.envelope.correlationid,
            case_id=event.case_id,
            severity=event.severity,
            tier_hint=event.customer_tier,
            department=department,
            resolution_code=event.resolution_code,
            sla_breached=bool(values["sla_breached"]),
            first_handling_failed=not event.first_handling,
            acting_role=policy.approvals.automatic_role,
        )
        await open_compensation(ctx.conn, ctx.emitter.db, policy, trigger, _emitter(ctx))

    async def on_sla_breached(ctx: HandlerContext, event: EventData) -> None:
        assert isinstance(event, CaseSlaBreached)
        await _update_case(ctx, event.case_id, sla_breached=True)
        rule = policy.sla_breach
        if not rule.compensate_at_once or event.clock not in rule.clocks:
            return
        known = await get_case(ctx.conn, event.case_id)
        trigger = Trigger(
            customer_id=event.customer_id,
            reason="sla_breach",
            correlation_id=ctx.envelope.correlationid,
            case_id=event.case_id,
            severity=event.severity,
            tier_hint=event.customer_tier,
            department=known["department"] if known else None,
            acting_role=policy.approvals.automatic_role,
            extra_reasons=[f"trigger: {event.clock} clock breached (due {event.due_at.isoformat()})"],
        )
        await open_compensation(ctx.conn, ctx.emitter.db, policy, trigger, _emitter(ctx))

    async def on_survey_answered(ctx: HandlerContext, event: EventData) -> None:
        assert isinstance(event, SurveyAnswered)
        if not is_low_survey(policy, event.csat, event.nps):
            return
        known = await get_case(ctx.conn, event.case_id)
        trigger = Trigger(
            customer_id=event.customer_id,
            reason="low_survey",
            correlation_id=ctx.envelope.correlationid,
            case_id=event.case_id,
            severity=Severity(known["severity"]) if known else Severity.P3,
            tier_hint=event.customer_tier or (tier_of(None, known["customer_tier"]) if known else None),
            department=known["department"] if known else None,
            acting_role=policy.approvals.automatic_role,
            extra_reasons=[f"trigger: survey {event.survey_id} answered CSAT {event.csat}, NPS {event.nps}"],
        )
        await open_compensation(ctx.conn, ctx.emitter.db, policy, trigger, _emitter(ctx))

    async def on_tier_changed(ctx: HandlerContext, event: EventData) -> None:
        assert isinstance(event, TierChanged)
        await project_tier(ctx, event)

    return {
        CaseRouted.event_type: on_case_routed,
        CaseEscalated.event_type: on_case_escalated,
        CaseHandedOff.event_type: on_case_handed_off,
        CaseReopened.event_type: on_case_reopened,
        CaseResolved.event_type: on_case_resolved,
        CaseSlaBreached.event_type: on_sla_breached,
        SurveyAnswered.event_type: on_survey_answered,
        TierChanged.event_type: on_tier_changed,
    }


async def project_tier(ctx: HandlerContext, event: TierChanged) -> None:
    """Keep the newest tier (and region, when the event carries one); older changes never win."""
    region = (event.model_extra or {}).get("region")
    values: dict[str, Any] = {
        "customer_id": event.customer_id,
        "tier": event.to_tier.value,
        "tier_changed_at": event.changed_at,
        "updated_at": utcnow(),
    }
    if region:
        values["region"] = str(region)[:60]
    await upsert(
        ctx.conn,
        customers,
        values,
        ["customer_id"],
        [k for k in values if k != "customer_id"],
        # One statement, no read-then-write: a change older than the projected one never wins.
        where=sa.or_(customers.c.tier_changed_at.is_(None), customers.c.tier_changed_at <= event.changed_at),
    )


def make_timer_handlers(policy: RecoveryPolicy) -> dict[str, TimerHandler]:
    """Durable timers of recovery: an offer lapses to its default."""

    async def on_offer_expired(ctx: TimerContext) -> None:
        await expire(ctx.conn, ctx.emitter, policy, str(ctx.payload["compensation_id"]))

    return {OFFER_TIMER: on_offer_expired}
