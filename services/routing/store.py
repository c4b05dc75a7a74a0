"""Cases in the database: load a case, and write a transition's outcome in the caller's transaction.

Writing an outcome keeps everything of one change together: the case row (with the columns
queues sort and figures aggregate on), a history row for the action and one per event, the
hand-off bookkeeping, the events themselves (outbox) and the case's next SLA timer.
"""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.routing import sla
from services.routing.case import CaseSnapshot, Outcome
from services.routing.models import case_history, cases, handoffs
from services.routing.policy import RoutingPolicy
from shared.db import Database
from shared.envelope import Envelope
from shared.events import EventData
from shared.events.cases import CaseHandedOff
from shared.timers import schedule

SLA_TIMER = "routing.sla"
Emit = Callable[[EventData], Awaitable[Envelope]]


def snapshot_of(row: sa.RowMapping) -> CaseSnapshot:
    """The pure case kept in a row."""
    return CaseSnapshot.model_validate(row["snapshot"])


async def load_row(
    conn: AsyncConnection,
    *,
    case_id: str | None = None,
    complaint_id: str | None = None,
    lock: bool = False,
    skip_locked: bool = False,
) -> sa.RowMapping | None:
    """A case row by id or complaint id, optionally locked for this transaction."""
    query = sa.select(cases)
    query = query.where(cases.c.id == case_id) if case_id else query.where(cases.c.complaint_id == complaint_id)
    if lock:
        query = query.with_for_update(skip_locked=skip_locked)
    return (await conn.execute(query)).mappings().first()


async def case_exists(conn: AsyncConnection, case_id: str) -> bool:
    """Whether a case row exists (without waiting for its lock)."""
    return bool(await conn.scalar(sa.select(sa.func.count()).select_from(cases).where(cases.c.id == case_id)))


def clock_bounds(case: CaseSnapshot, policy: RoutingPolicy) -> tuple[datetime | None, datetime | None]:
    """Earliest warning time and earliest deadline among the clocks still running."""
    calendar, share = case.calendar(policy), policy.warning_share
    running = [c for c in case.clocks.values() if sla.is_running(c)] if case.status != "resolved" else []
    warns = [w for c in running if (w := sla.warn_at(c, share, calendar, case.pauses)) is not None]
    dues = [d for c in running if (d := sla.due_at(c, calendar, case.pauses)) is not None]
    return min(warns, default=None), min(dues, default=None)


def case_columns(case: CaseSnapshot, policy: RoutingPolicy, now: datetime) -> dict[str, Any]:
    """The row values that mirror a case snapshot."""
    due = case.deadlines(policy)
    next_warn, next_due = clock_bounds(case, policy)
    closed_pauses = [p for p in case.pauses if p.ended_at is not None]
    ack = case.acknowledged_at
    return {
        "state": case.status,
        "severity": case.severity.value,
        "level": case.level.value,
        "queue": case.queue,
        "owner": case.owner,
        "assignee": case.assignee,
        "customer_tier": case.customer_tier.value,
        "acknowledged_at": ack,
        "first_response_due": due.first_response_due,
        "next_update_due": due.next_update_due,
        "resolution_due": due.resolution_due,
        "next_warn_at": next_warn,
        "next_due_at": next_due,
        "resolved_at": case.resolved_at,
        "resolution_code": case.resolution_code,
        "first_handling": case.first_handling,
        "sla_breached": case.sla_breached(),
        "complex": case.complex,
        "first_response_seconds": (ack - case.received_at).total_seconds() if ack else None,
        "handoff_count": case.handoff_count,
        "reopen_count": case.reopen_count,
        "escalations": case.escalations,
        "follow_ups": case.follow_ups,
        "pause_count": len(case.pauses),
        "paused_seconds": sum(((p.ended_at - p.started_at) for p in closed_pauses), timedelta(0)).total_seconds(),
        "snapshot": case.model_dump(mode="json"),
        "updated_at": now,
    }


async def insert_case(
    conn: AsyncConnection, case: CaseSnapshot, policy: RoutingPolicy, now: datetime, extra: dict[str, Any]
) -> None:
    """Insert a newly routed case."""
    values = case_columns(case, policy, now) | extra
    values |= {
        "id": case.case_id,
        "complaint_id": case.complaint_id,
        "customer_id": case.customer_id,
        "category": case.category.value,
        "initial_severity": case.severity.value,
        "received_at": case.received_at,
        "routed_at": case.routed_at,
        "routed_seconds": max(0.0, (case.routed_at - case.received_at).total_seconds()),
        "policy_version": case.policy_version,
    }
    await conn.execute(sa.insert(cases).values(**values))


async def _record_history(conn: AsyncConnection, outcome: Outcome, envelopes: list[Envelope]) -> None:
    record = outcome.record
    rows = [
        {
            "case_id": outcome.case.case_id,
            "at": record.at,
            "kind": "action",
            "name": record.action,
            "by": record.by,
            "role": record.role.value if record.role else None,
            "event_id": None,
            "detail": _jsonable(record.detail),
        }
    ]
    rows += [
        {
            "case_id": outcome.case.case_id,
            "at": record.at,
            "kind": "event",
            "name": env.type,
            "by": record.by,
            "role": record.role.value if record.role else None,
            "event_id": env.id,
            "detail": env.data,
        }
        for env in envelopes
    ]
    await conn.execute(sa.insert(case_history), rows)


def _jsonable(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in detail.items()}


async def _book_handoffs(conn: AsyncConnection, outcome: Outcome) -> None:
    """Close the hand-offs that were taken up, open the one just requested."""
    case_id = outcome.case.case_id
    for event in outcome.events:
        if isinstance(event, CaseHandedOff):
            open_row = sa.select(sa.func.max(handoffs.c.id)).where(
                handoffs.c.case_id == case_id, handoffs.c.taken_at.is_(None)
            )
            await conn.execute(
                sa.update(handoffs)
                .where(handoffs.c.id == open_row.scalar_subquery())
                .values(taken_by=event.to_owner, taken_at=outcome.record.at, handoff_seconds=event.handoff_seconds)
            )
    pending = outcome.case.pending_handoff
    if outcome.record.action == "handoff" and pending is not None:
        await conn.execute(
            sa.insert(handoffs).values(
                case_id=case_id,
                from_queue=pending.from_queue,
                to_queue=pending.to_queue,
                requested_queue=str(outcome.record.detail.get("requested_queue") or pending.to_queue),
                from_owner=pending.from_owner,
                to_owner=pending.to_owner,
                reason=pending.reason,
                requested_by=pending.by,
                requested_at=pending.requested_at,
            )
        )


async def schedule_timers(conn: AsyncConnection, db: Database, case: CaseSnapshot, policy: RoutingPolicy) -> None:
    """Make sure every warning and breach still to come for the case has a timer row.

    Keys name the moment, so scheduling the same one again is a no-op. Timers made stale by a
    later change (a pause, an update, an escalation) stay in place and are recognised as stale
    by the pure rules when they fire. Having every moment as a row lets a restarted service
    catch up in due order across all cases.
    """
    for timer in case.timers(policy):
        await schedule(conn, db, SLA_TIMER, timer_key(case.case_id, timer), timer.due_at, timer_payload(case, timer))


def timer_key(case_id: str, timer: sla.TimerSpec) -> str:
    """A key unique to one case's one warning or breach moment."""
    return f"{case_id}/{timer.clock}/{timer.kind}/{timer.due_at.isoformat()}"


def timer_payload(case: CaseSnapshot, timer: sla.TimerSpec) -> dict[str, Any]:
    """What the timer handler needs: the case and the moment, and the correlation id for its events."""
    return {"case_id": case.case_id, "correlation_id": case.complaint_id, **timer.model_dump(mode="json")}


async def save_outcome(
    conn: AsyncConnection,
    db: Database,
    outcome: Outcome,
    emit: Emit,
    policy: RoutingPolicy,
    now: datetime,
    *,
    new_case: dict[str, Any] | None = None,
) -> list[Envelope]:
    """Persist one transition: case row, events, history, hand-offs and the next timer."""
    case = outcome.case
    if new_case is not None:
        await insert_case(conn, case, policy, now, new_case)
    else:
        await conn.execute(sa.update(cases).where(cases.c.id == case.case_id).values(**case_columns(case, policy, now)))
    envelopes = [await emit(event) for event in outcome.events]
    await _record_history(conn, outcome, envelopes)
    await _book_handoffs(conn, outcome)
    await schedule_timers(conn, db, case, policy)
    return envelopes
