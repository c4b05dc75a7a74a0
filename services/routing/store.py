"""Cases in the database: load cases, and write transitions' outcomes in the caller's transaction.

Writing an outcome keeps everything of one change together: the case row (with the columns
queues sort and figures aggregate on), a history row for the action and one per event, the
hand-off bookkeeping, the events themselves (outbox) and the case's SLA timers. ``CaseWriter``
gathers the rows of many transitions (a consumer's run of events) and writes each table with one
statement; statements are built once, with bound parameters, and reused.
"""

import functools
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.routing import sla
from services.routing.case import CaseSnapshot, Outcome
from services.routing.models import case_history, cases, handoffs
from services.routing.policy import RoutingPolicy
from shared.db import Database, any_of_param, defer_insert, insert_rows, utcnow
from shared.envelope import Envelope
from shared.events import EventData
from shared.events.cases import CaseHandedOff

SLA_TIMER = "routing.sla"
Emit = Callable[[EventData], Awaitable[Envelope]]

_BY_ID = sa.select(cases).where(cases.c.id == sa.bindparam("case_id"))
_LOAD = {  # (lock, skip_locked)
    (False, False): _BY_ID,
    (True, False): _BY_ID.with_for_update(),
    (True, True): _BY_ID.with_for_update(skip_locked=True),
}
_CASE_EXISTS = sa.select(sa.func.count()).select_from(cases).where(cases.c.id == sa.bindparam("case_id"))
# No values: the SET clause comes from the parameters (every case_columns key), the same for every case.
_UPDATE_CASE = sa.update(cases).where(cases.c.id == sa.bindparam("case_key"))


def snapshot_of(row: sa.RowMapping | dict[str, Any]) -> CaseSnapshot:
    """The pure case kept in a row."""
    return CaseSnapshot.model_validate(row["snapshot"])


async def load_row(
    conn: AsyncConnection, *, case_id: str, lock: bool = False, skip_locked: bool = False
) -> sa.RowMapping | None:
    """A case row by id, optionally locked for this transaction (without waiting, with ``skip_locked``)."""
    query = _LOAD[(lock, lock and skip_locked)]
    return (await conn.execute(query, {"case_id": case_id})).mappings().first()


@functools.cache
def _by_complaints(dialect: str) -> sa.Select[Any]:
    # Locked in id order, so two transactions locking overlapping runs cannot deadlock.
    return (
        sa.select(cases).where(any_of_param(cases.c.complaint_id, "complaint_ids", dialect)).order_by(cases.c.id)
        .with_for_update()
    )


async def load_rows_by_complaint(conn: AsyncConnection, complaint_ids: Collection[str]) -> list[sa.RowMapping]:
    """The cases of these complaints (those that exist), locked for this transaction, in one statement."""
    if not complaint_ids:
        return []
    query = _by_complaints(conn.dialect.name)
    return list((await conn.execute(query, {"complaint_ids": list(complaint_ids)})).mappings().all())


async def case_exists(conn: AsyncConnection, case_id: str) -> bool:
    """Whether a case row exists (without waiting for its lock)."""
    return bool(await conn.scalar(_CASE_EXISTS, {"case_id": case_id}))


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


def new_case_values(case: CaseSnapshot, columns: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The row of a newly routed case: its ``case_columns``, what only intake knew, and what never changes."""
    return columns | extra | {
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


def history_rows(outcome: Outcome, envelopes: list[Envelope]) -> list[dict[str, Any]]:
    """The history entries of one transition: the action, then one per event it published."""
    record = outcome.record
    common = {
        "case_id": outcome.case.case_id,
        "at": record.at,
        "by": record.by,
        "role": record.role.value if record.role else None,
    }
    rows = [{**common, "kind": "action", "name": record.action, "event_id": None, "detail": _jsonable(record.detail)}]
    rows += [{**common, "kind": "event", "name": env.type, "event_id": env.id, "detail": env.data} for env in envelopes]
    return rows


def _jsonable(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in detail.items()}


async def _book_handoffs(conn: AsyncConnection, outcome: Outcome) -> None:
    """Close the hand-offs that were taken up, open the one just requested (operator actions only)."""
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


def timer_key(case_id: str, timer: sla.TimerSpec) -> str:
    """A key unique to one case's one warning or breach moment."""
    return f"{case_id}/{timer.clock}/{timer.kind}/{timer.due_at.isoformat()}"


def timer_payload(case: CaseSnapshot, timer: sla.TimerSpec) -> dict[str, Any]:
    """What the timer handler needs: the case and the moment, and the correlation id for its events."""
    return {"case_id": case.case_id, "correlation_id": case.complaint_id, **timer.model_dump(mode="json")}


def timer_rows(case: CaseSnapshot, policy: RoutingPolicy, now: datetime) -> dict[str, dict[str, Any]]:
    """A timer row per warning and breach still to come for the case, by key."""
    rows = {}
    for timer in case.timers(policy):
        key = timer_key(case.case_id, timer)
        rows[key] = {"kind": SLA_TIMER, "key": key, "due_at": timer.due_at, "payload": timer_payload(case, timer),
                     "created_at": now, "attempts": 0}
    return rows


async def _write_timers(conn: AsyncConnection, db: Database, rows: list[dict[str, Any]]) -> None:
    """Timer rows unless their (kind, key) exists: one statement for any number of rows."""
    timers = db.tables.timers
    await insert_rows(conn, timers, rows, skip_conflicts=True, returning=[timers.c.id])


async def schedule_timers(conn: AsyncConnection, db: Database, case: CaseSnapshot, policy: RoutingPolicy) -> None:
    """Make sure every warning and breach still to come for the case has a timer row.

    Keys name the moment, so scheduling the same one again is a no-op. Timers made stale by a
    later change (a pause, an update, an escalation) stay in place and are recognised as stale
    by the pure rules when they fire. Having every moment as a row lets a restarted service
    catch up in due order across all cases.
    """
    await _write_timers(conn, db, list(timer_rows(case, policy, utcnow()).values()))


class CaseWriter:
    """The rows of a run of transitions in one transaction, written with one statement per table.

    ``record`` takes each transition in order: it emits the events at once (the outbox keeps their
    order) and keeps the rows; ``flush`` writes them. A case changed twice in the run is written
    once, as it stands after the last change (a new case is inserted as such); its timers are the
    union of every state's, as writing after each change would leave.
    """

    def __init__(self, db: Database, policy: RoutingPolicy) -> None:
        self.db = db
        self.policy = policy
        self.inserts: dict[str, dict[str, Any]] = {}
        self.updates: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []
        self.timers: dict[str, dict[str, Any]] = {}

    async def record(
        self,
        conn: AsyncConnection,
        outcome: Outcome,
        emit: Emit,
        now: datetime,
        *,
        new_case: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Take one transition: events emitted now, rows kept for ``flush``; returns the case's columns."""
        case = outcome.case
        columns = case_columns(case, self.policy, now)
        if new_case is not None:
            self.inserts[case.case_id] = new_case_values(case, columns, new_case)
        elif case.case_id in self.inserts:
            self.inserts[case.case_id].update(columns)
        else:
            self.updates[case.case_id] = columns
        envelopes = [await emit(event) for event in outcome.events]
        self.history += history_rows(outcome, envelopes)
        await _book_handoffs(conn, outcome)
        for key, row in timer_rows(case, self.policy, now).items():
            self.timers.setdefault(key, row)
        return columns

    async def flush(self, conn: AsyncConnection, *, defer: bool = False) -> None:
        """Write the kept rows: new cases, changed cases, history, timers.

        With ``defer`` the new rows go in with the transaction's outbox rows, in its one statement at
        commit (``defer_insert``): for a consumer's run, after which nothing in the transaction reads
        them before the consumer writes them (``flush_deferred_rows``).
        """
        if self.updates:
            await conn.execute(_UPDATE_CASE, [{**cols, "case_key": key} for key, cols in self.updates.items()])
        new_cases, new_timers = list(self.inserts.values()), list(self.timers.values())
        if defer:
            await defer_insert(conn, cases, new_cases)
            await defer_insert(conn, case_history, self.history)
            await defer_insert(conn, self.db.tables.timers, new_timers, skip_conflicts=True)
        else:
            await insert_rows(conn, cases, new_cases, returning=[cases.c.id])
            await insert_rows(conn, case_history, self.history, returning=[case_history.c.id])
            await _write_timers(conn, self.db, new_timers)
        self.inserts, self.updates, self.history, self.timers = {}, {}, [], {}


async def save_outcome(
    conn: AsyncConnection,
    db: Database,
    outcome: Outcome,
    emit: Emit,
    policy: RoutingPolicy,
    now: datetime,
    *,
    new_case: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Persist one transition: case row, events, history, hand-offs and timers; returns the case's columns."""
    writer = CaseWriter(db, policy)
    columns = await writer.record(conn, outcome, emit, now, new_case=new_case)
    await writer.flush(conn)
    return columns
