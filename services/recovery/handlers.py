"""Recovery's event handlers: case and customer projections, and the three case triggers.

- case.resolved.v1: compensation for the case (tier x severity, with modifiers);
- case.sla_breached.v1: the delay's own remedy at once, when the policy says so;
- survey.answered.v1: goodwill after a low CSAT or an NPS detractor, once per case;
- loyalty.tier_changed.v1: the tier (and region) projection used by decisions and segments.
Redelivered events are absorbed by the inbox; a second event for the same (case, reason) finds
the first compensation and does nothing (the unique constraint is the last guard).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.recovery.decision import is_low_survey
from services.recovery.flow import OFFER_TIMER, Trigger, expire, open_compensation
from services.recovery.models import cases, customers
from services.recovery.policy import RecoveryPolicy
from services.recovery.store import dialect_insert, get_case, tier_of, upsert
from shared.consumer import BatchableHandler, Handler, HandlerContext
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
RESOLVED_COLUMNS = (
    "case_id",
    "complaint_id",
    "customer_id",
    "severity",
    "category",
    "customer_tier",
    "department",
    "queue",
    "first_handling",
    "sla_breached",
    "resolution_code",
    "correlation_id",
    "resolved_at",
    "updated_at",
)


def _emitter(ctx: HandlerContext) -> Callable[[EventData, str | None], Awaitable[Envelope]]:
    async def emit(data: EventData, subject: str | None) -> Envelope:
        return await ctx.emit(data, subject=subject)

    return emit


async def _update_case(ctx: HandlerContext, case_id: str, **values: Any) -> None:
    await ctx.conn.execute(sa.update(cases).where(cases.c.case_id == case_id).values(**values, updated_at=utcnow()))


def _case_columns(ctx: HandlerContext, event: CaseRouted | CaseResolved) -> dict[str, Any]:
    """The case's columns that every case event carries."""
    return {
        "case_id": event.case_id,
        "complaint_id": event.complaint_id,
        "customer_id": event.customer_id,
        "severity": event.severity.value,
        "category": event.category.value,
        "customer_tier": event.customer_tier.value,
        "queue": event.queue,
        "correlation_id": ctx.envelope.correlationid,
        "updated_at": utcnow(),
    }


def _routed_row(ctx: HandlerContext, event: EventData) -> dict[str, Any]:
    assert isinstance(event, CaseRouted)
    return {
        **_case_columns(ctx, event),
        "department": event.departments[0].value if event.departments else None,
        "state": "open",
        "routed_at": event.routed_at,
    }


@functools.cache
def _project_routed_stmt(dialect: str) -> Any:
    stmt = dialect_insert(dialect, cases)
    return stmt.on_conflict_do_update(index_elements=["case_id"], set_={c: stmt.excluded[c] for c in CASE_COLUMNS})


async def _project_routed(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Upsert routed cases, in order, in one round trip; a known case gets the routed columns."""
    await conn.execute(_project_routed_stmt(conn.dialect.name), rows)


@functools.cache
def _project_resolved_stmt(dialect: str) -> Any:
    c = cases.c
    stmt = dialect_insert(dialect, cases).values(
        {**{column: sa.bindparam(column) for column in RESOLVED_COLUMNS}, "state": "resolved"}
    )
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=["case_id"],
        set_={
            "severity": new.severity,
            # The event's department wins, else the one projected from routing; a breach seen earlier stays.
            "department": sa.func.coalesce(new.department, c.department),
            "queue": new.queue,
            "state": new.state,
            "first_handling": new.first_handling,
            "sla_breached": sa.or_(new.sla_breached, c.sla_breached),
            "resolution_code": new.resolution_code,
            "resolved_at": new.resolved_at,
            "updated_at": new.updated_at,
        },
    ).returning(c.department, c.sla_breached)


_BREACH = (
    sa.update(cases)
    .where(cases.c.case_id == sa.bindparam("b_case_id"))  # a column's own name is reserved in an UPDATE
    .values(sla_breached=True, updated_at=sa.bindparam("now"))
    .returning(cases.c.department)
)


async def _project_resolved(ctx: HandlerContext, event: CaseResolved) -> tuple[str | None, bool]:
    """Project a resolved case in one statement; returns its department and whether its SLA was breached."""
    params = {
        **_case_columns(ctx, event),
        "department": event.department,
        "first_handling": event.first_handling,
        "sla_breached": event.sla_breached,
        "resolution_code": event.resolution_code,
        "resolved_at": event.resolved_at,
    }
    row = (await ctx.conn.execute(_project_resolved_stmt(ctx.conn.dialect.name), params)).one()
    return row.department, bool(row.sla_breached)


def make_handlers(policy: RecoveryPolicy) -> dict[str, Handler]:
    """The consumers of recovery, bound to the policy loaded at start."""

    async def on_case_routed(ctx: HandlerContext, event: EventData) -> None:
        await _project_routed(ctx.conn, [_routed_row(ctx, event)])

    async def on_cases_routed(events: list[tuple[HandlerContext, EventData]]) -> None:
        await _project_routed(events[0][0].conn, [_routed_row(ctx, event) for ctx, event in events])

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
        department, sla_breached = await _project_resolved(ctx, event)
        trigger = Trigger(
            customer_id=event.customer_id,
            reason="case_resolved",
            correlation_id=ctx.envelope.correlationid,
            case_id=event.case_id,
            severity=event.severity,
            tier_hint=event.customer_tier,
            department=department,
            resolution_code=event.resolution_code,
            sla_breached=sla_breached,
            first_handling_failed=not event.first_handling,
            acting_role=policy.approvals.automatic_role,
        )
        await open_compensation(ctx.conn, ctx.emitter.db, policy, trigger, _emitter(ctx))

    async def on_sla_breached(ctx: HandlerContext, event: EventData) -> None:
        assert isinstance(event, CaseSlaBreached)
        rule = policy.sla_breach
        if not rule.compensate_at_once or event.clock not in rule.clocks:
            await _update_case(ctx, event.case_id, sla_breached=True)
            return
        department = await ctx.conn.scalar(_BREACH, {"b_case_id": event.case_id, "now": utcnow()})
        trigger = Trigger(
            customer_id=event.customer_id,
            reason="sla_breach",
            correlation_id=ctx.envelope.correlationid,
            case_id=event.case_id,
            severity=event.severity,
            tier_hint=event.customer_tier,
            department=department,
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
        CaseRouted.event_type: BatchableHandler(one=on_case_routed, many=on_cases_routed),
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
