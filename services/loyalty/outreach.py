"""Care follow-ups (durable timers on days 3 and 7), churn-risk alerts and the post-recovery survey."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.loyalty import accounts, feedback, ledger
from services.loyalty.care import ChurnInputs, ChurnSignal, churn_alert_due, churn_signals, followup_schedule
from services.loyalty.ledger import Tx
from services.loyalty.models import care_followups, complaints_seen, customers, surveys
from services.loyalty.policy import ChurnRules
from shared import timers
from shared.db import insert_ignore, insert_rows, utcnow
from shared.events.loyalty import CareFollowupDue, ChurnRisk
from shared.events.vocabulary import CustomerTier

FOLLOWUP_TIMER = "loyalty.care_followup"
RECOVERY_SURVEY_TIMER = "loyalty.recovery_survey"


def followup_key(case_id: str, resolved_at: datetime, day: int) -> str:
    """Timer key of one follow-up: a case resolved again after a reopen gets new follow-ups."""
    return f"{case_id}@{resolved_at.strftime('%Y%m%dT%H%M%S%f')}#d{day}"


async def schedule_followups(tx: Tx, customer_id: str, case_id: str, resolved_at: datetime) -> int:
    """Schedule the day-3 and day-7 follow-ups of a resolution (once); returns how many were new.

    Two statements whatever the number of days: the follow-ups, then the timers of the new ones.
    """
    planned = {
        followup_key(case_id, resolved_at, item.day): item
        for item in followup_schedule(resolved_at, tx.policy.care.followup_days)
    }
    rows = [
        {"timer_key": key, "customer_id": customer_id, "case_id": case_id, "day": item.day, "due_at": item.due_at,
         "status": "pending", "status_at": tx.now}
        for key, item in planned.items()
    ]
    result = await tx.conn.execute(
        _insert(tx.conn, care_followups).values(rows).on_conflict_do_nothing().returning(care_followups.c.timer_key)
    )
    new = set(result.scalars())
    due = {
        key: (item.due_at, {"customer_id": customer_id, "case_id": case_id, "day": item.day,
                            "correlation_id": tx.correlation_id})
        for key, item in planned.items()
        if key in new
    }
    if due:
        await _schedule_timers(tx, FOLLOWUP_TIMER, due)
    return len(due)


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """The dialect's INSERT (it has ON CONFLICT)."""
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


async def _schedule_timers(tx: Tx, kind: str, due: dict[str, tuple[datetime, dict[str, Any]]]) -> None:
    """`shared.timers.schedule` of several timers of one kind in one statement (an existing key is kept)."""
    created_at = utcnow()
    rows = [
        {"kind": kind, "key": key, "due_at": due_at, "payload": payload, "created_at": created_at, "attempts": 0}
        for key, (due_at, payload) in due.items()
    ]
    await tx.conn.execute(_insert(tx.conn, tx.db.tables.timers).values(rows).on_conflict_do_nothing())


async def cancel_followups(tx: Tx, *, customer_id: str | None = None, case_id: str | None = None) -> int:
    """Cancel pending follow-ups of a customer (they complained again) or of a case (it was reopened)."""
    if customer_id is None and case_id is None:
        raise ValueError("cancel_followups needs a customer or a case")
    where = [care_followups.c.status == "pending"]
    # `is not None`: an empty id selects nobody's follow-ups, never everybody's.
    if customer_id is not None:
        where.append(care_followups.c.customer_id == customer_id)
    if case_id is not None:
        where.append(care_followups.c.case_id == case_id)
    return await _cancel_where(tx, where)


async def _cancel_where(tx: Tx, where: list[Any]) -> int:
    """Cancel the pending follow-ups `where` selects, and their timers: two statements at most."""
    result = await tx.conn.execute(
        sa.update(care_followups)
        .where(*where)
        .values(status="cancelled", status_at=tx.now)
        .returning(care_followups.c.timer_key)
    )
    keys = list(result.scalars())
    if keys:
        # What `shared.timers.cancel` does, for every key in one statement.
        timers_table = tx.db.tables.timers
        await tx.conn.execute(
            sa.update(timers_table)
            .where(
                timers_table.c.kind == FOLLOWUP_TIMER,
                timers_table.c.key.in_(keys),
                timers_table.c.fired_at.is_(None),
                timers_table.c.cancelled_at.is_(None),
            )
            .values(cancelled_at=utcnow())
        )
    return len(keys)


async def fire_followup(tx: Tx, key: str, payload: dict[str, Any], due_at: datetime) -> bool:
    """A follow-up timer fired: publish `care.followup_due.v1` unless it was cancelled meanwhile."""
    result = await tx.conn.execute(
        sa.update(care_followups)
        .where(care_followups.c.timer_key == key, care_followups.c.status == "pending")
        .values(status="due", status_at=tx.now)
    )
    if result.rowcount != 1:
        return False
    await tx.emit(
        CareFollowupDue(
            customer_id=payload["customer_id"], case_id=payload["case_id"], day=int(payload["day"]), due_at=due_at
        ),
        payload["case_id"],
    )
    return True


async def record_complaint(tx: Tx, complaint_id: str, customer_id: str, received_at: datetime) -> bool:
    """Remember a complaint's time (for the complaint-rate signal); False if seen before."""
    return await insert_ignore(
        tx.conn,
        complaints_seen,
        {"complaint_id": complaint_id, "customer_id": customer_id, "received_at": received_at},
    )


def _complaint_times_since(now: datetime, rules: ChurnRules) -> datetime:
    """The oldest complaint the complaint-rate signal looks at: the recent window and the one before."""
    return now - 2 * timedelta(days=rules.complaint_window_days)


async def _complaint_times(conn: AsyncConnection, customer_id: str, since: datetime) -> tuple[datetime, ...]:
    rows = await conn.scalars(
        sa.select(complaints_seen.c.received_at).where(
            complaints_seen.c.customer_id == customer_id, complaints_seen.c.received_at >= since
        )
    )
    return tuple(rows)


def _alert_signals(
    rules: ChurnRules, inputs: ChurnInputs, last_alert_at: datetime | None
) -> list[ChurnSignal]:
    """The signals of the churn alert to raise now; empty when none is present or the cooldown runs."""
    signals = churn_signals(inputs, rules)
    if not signals or not churn_alert_due(last_alert_at, inputs.now, rules):
        return []
    return signals


def _churn_risk(
    customer_id: str, signals: list[ChurnSignal], now: datetime, tier: CustomerTier, case_id: str | None
) -> ChurnRisk:
    return ChurnRisk(
        customer_id=customer_id,
        signals=[s.value for s in signals],
        detected_at=now,
        customer_tier=tier,
        case_id=case_id,
    )


async def _mark_alerted(conn: AsyncConnection, customer_ids: Iterable[str], now: datetime) -> None:
    """Start the customers' churn-alert cooldown (their rows are locked)."""
    await conn.execute(
        sa.update(customers).where(customers.c.customer_id.in_(sorted(customer_ids))).values(last_churn_alert_at=now)
    )


async def evaluate_churn(
    tx: Tx,
    customer_id: str,
    *,
    low_score: bool = False,
    sla_breached: bool = False,
    case_id: str | None = None,
    tier_hint: CustomerTier | None = None,
) -> list[str]:
    """Raise `care.churn_risk.v1` when signals are present and no alert went out within the cooldown."""
    rules = tx.policy.care.churn
    account = await ledger.lock_or_create_customer(tx, customer_id)
    tier = CustomerTier(account["tier"])
    if tier_hint is not None and not await accounts.has_purchased(tx.conn, customer_id):
        # Loyalty's tier of a customer without purchases says nothing yet (a grant or the yearly sweep
        # may have settled it all the same): trust the tier the case carried.
        tier = tier_hint
    times = await _complaint_times(tx.conn, customer_id, _complaint_times_since(tx.now, rules))
    inputs = ChurnInputs(tx.now, times, low_score, sla_breached, tier)
    signals = _alert_signals(rules, inputs, account["last_churn_alert_at"])
    if not signals:
        return []
    await _mark_alerted(tx.conn, [customer_id], tx.now)
    await tx.emit(_churn_risk(customer_id, signals, tx.now, tier, case_id), customer_id)
    return [s.value for s in signals]


@dataclass(frozen=True)
class Complaint:
    """One complaint of a batch: what `record_complaint` takes, and the unit of work whose event it emits."""

    tx: Tx
    complaint_id: str
    customer_id: str
    received_at: datetime


async def receive_complaints(complaints: Sequence[Complaint]) -> None:
    """For each complaint in order, `record_complaint`, then, if it is new, `cancel_followups` and
    `evaluate_churn` of its customer: with at most six statements for the whole batch, whatever its size.

    The result is that of those calls one complaint after the other: a complaint id already seen,
    or earlier in the batch, has no effect; each customer's row is created if new and locked; each
    complaint's churn check counts the customer's complaints up to and including it (not the later
    ones of the batch) and sees an alert raised earlier in the batch; the alerts go out in order.
    The complaints share the first one's transaction and time.
    """
    if not complaints:
        return
    first = complaints[0].tx
    conn, now, rules = first.conn, first.now, first.policy.care.churn
    firsts: dict[str, Complaint] = {}  # in batch order: a repeated id is the first one's
    for complaint in complaints:
        firsts.setdefault(complaint.complaint_id, complaint)
    recorded = await _record_complaints(conn, list(firsts.values()))
    new = [c for c in firsts.values() if c.complaint_id in recorded]
    if not new:
        return
    customer_ids = {c.customer_id for c in new}
    where = [care_followups.c.status == "pending", care_followups.c.customer_id.in_(sorted(customer_ids))]
    await _cancel_where(first, where)
    accounts = await ledger.lock_or_create_customers(conn, list(customer_ids), now)
    # Every counted complaint of these customers; the batch's own count from their turn on.
    earlier: dict[str, list[datetime]] = {cid: [] for cid in customer_ids}
    in_batch: dict[str, datetime] = {}
    rows = await conn.execute(
        sa.select(complaints_seen.c.complaint_id, complaints_seen.c.customer_id, complaints_seen.c.received_at).where(
            complaints_seen.c.customer_id.in_(sorted(customer_ids)),
            complaints_seen.c.received_at >= _complaint_times_since(now, rules),
        )
    )
    for row in rows:
        if row.complaint_id in recorded:
            in_batch[row.complaint_id] = row.received_at
        else:
            earlier[row.customer_id].append(row.received_at)
    last_alert = {cid: account["last_churn_alert_at"] for cid, account in accounts.items()}
    alerts: list[tuple[Complaint, ChurnRisk]] = []
    for c in new:
        times = earlier[c.customer_id]
        if c.complaint_id in in_batch:
            times.append(in_batch[c.complaint_id])
        tier = CustomerTier(accounts[c.customer_id]["tier"])
        signals = _alert_signals(rules, ChurnInputs(now, tuple(times), tier=tier), last_alert[c.customer_id])
        if signals:
            last_alert[c.customer_id] = now
            alerts.append((c, _churn_risk(c.customer_id, signals, now, tier, None)))
    if alerts:
        await _mark_alerted(conn, {c.customer_id for c, _ in alerts}, now)
        for c, event in alerts:
            await c.tx.emit(event, c.customer_id)


async def _record_complaints(conn: AsyncConnection, complaints: list[Complaint]) -> set[str]:
    """`record_complaint` of complaints with distinct ids in one statement: the ids that were new."""
    rows = [
        {"complaint_id": c.complaint_id, "customer_id": c.customer_id, "received_at": c.received_at}
        for c in sorted(complaints, key=lambda c: c.complaint_id)  # one lock order for concurrent batches
    ]
    added = await insert_rows(conn, complaints_seen, rows, skip_conflicts=True,
                              returning=[complaints_seen.c.complaint_id])
    return {row.complaint_id for row in added}


async def schedule_recovery_survey(tx: Tx, customer_id: str, case_id: str | None, compensation_id: str) -> bool:
    """After a recovery for a low score, schedule the follow-up survey that measures whether it worked."""
    where = [surveys.c.customer_id == customer_id, surveys.c.low_score.is_(True), surveys.c.follow_up_of.is_(None)]
    if case_id:
        where.append(surveys.c.case_id == case_id)
    original = await tx.conn.scalar(
        sa.select(surveys.c.survey_id).where(*where).order_by(surveys.c.answered_at.desc()).limit(1)
    )
    if original is None:
        return False
    due = tx.now + timedelta(hours=tx.policy.surveys.recovery_followup_after_hours)
    return await timers.schedule(
        tx.conn,
        tx.db,
        RECOVERY_SURVEY_TIMER,
        compensation_id,
        due,
        {
            "customer_id": customer_id,
            "original_survey_id": original,
            "compensation_id": compensation_id,
            "correlation_id": tx.correlation_id,
        },
    )


async def issue_recovery_survey(tx: Tx, payload: dict[str, Any]) -> str | None:
    """The follow-up survey after a recovery: same case, tier, queue and category as the original."""
    original = (
        (await tx.conn.execute(sa.select(surveys).where(surveys.c.survey_id == payload["original_survey_id"])))
        .mappings()
        .first()
    )
    if original is None:
        return None
    tier = await feedback.customer_tier(tx.conn, original["customer_id"])
    return await feedback.issue_survey(
        tx,
        customer_id=original["customer_id"],
        case_id=original["case_id"],
        source_key=f"recovery:{payload['compensation_id']}",
        tier=tier,
        queue=original["queue"],
        category=original["category"],
        follow_up_of=original["survey_id"],
        compensation_id=payload["compensation_id"],
    )
