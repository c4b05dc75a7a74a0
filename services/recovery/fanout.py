"""The incident fan-out: issue every queued incident compensation, a batch per transaction.

Built for a million customers, at a cost per customer that does not grow with the incident or the
ledger:
- claims queued customers (`incident_targets`) in arrival order (`seq`) with FOR UPDATE SKIP
  LOCKED, so replicas share the work, after a forward-only keyset cursor, so it never rescans the
  dead rows of the customers it already served, and parts uploaded while it runs are always ahead
  of it; every `incident_sweep_seconds` it looks once from the start for rows left behind;
- customers of one incident and tier get the same decision, made once; each group is written by
  one statement (PostgreSQL) from two arrays: the compensations, their ledger entries and the
  removal from the queue; only the events are built per customer, from one validated template;
- compensation and event ids are time-ordered, so the key indexes grow at their right edge;
- a crash loses at most the uncommitted batch, which is claimed again: the compensation, its ledger
  entry, its event and the removal from the queue commit together, so nothing is paid twice;
- a rate limit keeps consumers and timers of case work served.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from services.recovery.backpressure import ConsumerBackpressure
from services.recovery.decision import Decision
from services.recovery.incidents import collect_once, incident_decision
from services.recovery.models import compensation_ledger, compensations, customers, incident_targets, incidents
from services.recovery.money import remedy_value_minor
from services.recovery.policy import RecoveryPolicy
from services.recovery.settings import Settings
from services.recovery.store import (
    insert_for,
    insert_ignore_many,
    new_id,
    ordered_ids,
    prior_compensations,
)
from shared.db import Database, UtcDateTime, any_of, utcnow
from shared.envelope import Envelope, new_event
from shared.events.compensation import CompensationIssued, IncidentCompleted, Remedy
from shared.events.vocabulary import CustomerTier, Role
from shared.outbox import Emitter
from shared.tracing import event_traceparent
from shared.transient import is_transient

log = logging.getLogger(__name__)


@dataclass
class _Group:
    """Claimed customers of one incident who get the same decision."""

    incident: sa.RowMapping
    tier: CustomerTier
    decision: Decision
    shared_reasons: bool = False
    rows: list[sa.RowMapping] = field(default_factory=list)


_t = incident_targets.c
# The next queued customers in arrival order, with their projected tier; built once.
_CLAIM = (
    sa.select(_t.seq, _t.incident_id, _t.customer_id, customers.c.tier)
    .select_from(incident_targets.outerjoin(customers, customers.c.customer_id == _t.customer_id))
    .where(_t.seq > sa.bindparam("after", type_=sa.BigInteger))
    .order_by(_t.seq)
    .limit(sa.bindparam("limit", type_=sa.Integer))
    .with_for_update(of=incident_targets, skip_locked=True)
)

# One group (incident, tier) of a batch in one round trip (PostgreSQL): the compensations from two
# arrays, the ledger entry of each one created (entry id = compensation id), the queue rows removed.
# A customer compensated already conflicts on (incident, customer) and is not returned.
_WRITE_GROUP = (
    sa.text(
        """
WITH todo AS (
    SELECT * FROM unnest(:ids, :customers) AS u(compensation_id, customer_id)
), created AS (
    INSERT INTO compensations (
        compensation_id, customer_id, incident_id, reason, status, customer_tier, options, default_option_id,
        chosen_option_id, customer_may_choose, acting_role, value_minor, currency, reasons, policy_version,
        decided_by, correlation_id, created_at, updated_at)
    SELECT compensation_id, customer_id, CAST(:incident_id AS varchar), 'incident', CAST(:status AS varchar),
        CAST(:tier AS varchar), CAST(:options AS json), CAST(:default_option_id AS varchar),
        CAST(:chosen_option_id AS varchar), false, CAST(:acting_role AS varchar), CAST(:value AS bigint),
        CAST(:currency AS varchar), CAST(:reasons AS json), CAST(:policy_version AS varchar),
        CAST(:decided_by AS varchar), CAST(:correlation_id AS varchar), :now, :now
    FROM todo
    ON CONFLICT DO NOTHING
    RETURNING compensation_id, customer_id
), entries AS (
    INSERT INTO compensation_ledger (
        id, compensation_id, entry_kind, customer_id, incident_id, reason, kind, option_id, amount_minor,
        currency, points, percent, value_minor, actor, issued_at)
    SELECT compensation_id, compensation_id, 'issue', customer_id, CAST(:incident_id AS varchar), 'incident',
        CAST(:kind AS varchar), CAST(:chosen_option_id AS varchar), CAST(:amount AS bigint),
        CAST(:currency AS varchar), CAST(:points AS integer), CAST(:percent AS integer), CAST(:value AS bigint),
        CAST(:decided_by AS varchar), :now
    FROM created WHERE CAST(:pays AS boolean)
), served AS (
    DELETE FROM incident_targets WHERE seq = ANY(:seqs)
)
SELECT compensation_id, customer_id FROM created
"""
    )
    .bindparams(
        sa.bindparam("ids", type_=ARRAY(sa.String)),
        sa.bindparam("customers", type_=ARRAY(sa.String)),
        sa.bindparam("seqs", type_=ARRAY(sa.BigInteger)),
        sa.bindparam("now", type_=UtcDateTime),
    )
    .columns(compensation_id=sa.String, customer_id=sa.String)
)


def _pointer(group: _Group) -> list[str]:
    incident = group.incident
    return [f"incident.{incident['incident_id']}: the {group.tier.value} remedy declared by {incident['declared_by']}"]


class FanOut:
    """Issues queued incident compensations in throttled batches; run one in every replica."""

    def __init__(
        self, db: Database, emitter: Emitter, policy: RecoveryPolicy, settings: Settings,
        backpressure: ConsumerBackpressure | None = None,
    ) -> None:
        self.db = db
        self.emitter = emitter
        self.policy = policy
        self.settings = settings
        self.backpressure = backpressure
        # `seq` of the last claimed row: the next claim starts after it (the queue only grows ahead of it).
        self._cursor = 0
        self._swept_at = time.monotonic()
        # The immutable columns of the incidents being fanned out (remedy, role, ids): read once, not per batch.
        self._incidents: dict[str, sa.RowMapping] = {}

    async def run(self, stopping: Callable[[], bool]) -> None:
        """Collect segments and fan out until `stopping()` is true, throttled to the configured rate."""
        issued, waiting = 0, False
        while not stopping():
            try:
                started = time.monotonic()
                collected = await collect_once(self.db, self.policy, self.settings.incident_collect_chunk)
                waiting = await self._held_back(busy=bool(issued) or waiting)
                issued = 0 if waiting else await self.fan_out_once()
                await self.complete_finished()
            except Exception as exc:
                log.warning("incident fan-out failed, retrying: %s", exc)
                await asyncio.sleep(1)
                continue
            if not collected and not issued:
                await asyncio.sleep(self.settings.incident_poll_seconds)
                continue
            # Throttle: never faster than the rate, so consumers and timers keep their share.
            pause = issued / self.settings.incident_rate_per_second - (time.monotonic() - started)
            await asyncio.sleep(max(pause, 0))

    async def _held_back(self, busy: bool) -> bool:
        """Whether the consumers' backpressure holds the next batch back. Read only while issuing or held:
        an idle fan-out reads no lag, and the first batch of an incident goes before the first reading."""
        return busy and self.backpressure is not None and await self.backpressure.holding()

    async def fan_out_once(self) -> int:
        """Claim and issue one batch; a batch that fails is retried customer by customer."""
        try:
            return await self._batch(self.settings.incident_batch_size)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning("incident batch failed (%s); retrying one customer at a time", exc)
        handled = 0
        for _ in range(self.settings.incident_batch_size):
            try:
                got = await self._batch(1)
            except Exception as exc:
                if is_transient(exc):
                    raise
                got = await self._fail_next(repr(exc))
            if not got:
                break
            handled += got
        return handled

    async def _batch(self, limit: int) -> int:
        async with self.db.transaction() as conn:
            rows = await self._claim_next(conn, limit)
            if not rows:
                return 0
            await self._issue(conn, rows)
        self._cursor = rows[-1]["seq"]
        return len(rows)

    async def _claim_next(self, conn: AsyncConnection, limit: int) -> list[sa.RowMapping]:
        """The next queued customers after the cursor; from the start of the queue once in a while.

        A row lands behind the cursor only when another replica that had it locked rolled back,
        or when two incidents' lists were queued by overlapping transactions: the periodic sweep
        from the start serves those. It is not done on every empty claim, because the queue's
        index still holds the served rows until vacuum and a scan from the start walks them all.
        """
        rows = await self._claim(conn, limit, self._cursor)
        if rows or not self._cursor:
            return rows
        if time.monotonic() - self._swept_at < self.settings.incident_sweep_seconds:
            return rows
        # Found rows move the cursor back to them (set after commit); finding none leaves it where it was.
        self._swept_at = time.monotonic()
        return await self._claim(conn, limit, 0)

    async def _claim(self, conn: AsyncConnection, limit: int, after: int) -> list[sa.RowMapping]:
        return list((await conn.execute(_CLAIM, {"after": after, "limit": limit})).mappings())

    async def _issue(self, conn: AsyncConnection, rows: list[sa.RowMapping]) -> None:
        now = utcnow()
        envelopes: list[Envelope] = []
        counts: dict[str, dict[str, int]] = {}
        for group in await self._groups(conn, rows, now):
            incident_id = group.incident["incident_id"]
            tally = counts.setdefault(incident_id, {"issued": 0, "skipped": 0, "total": 0})
            remedy = group.decision.option() if group.decision.compensates else None
            value = remedy_value_minor(remedy, self.policy, group.tier) if remedy else 0
            created = await self._write(conn, group, remedy, value, now)
            # A customer compensated already (queued again by a late retry) is not a new one.
            tally["total"] -= len(group.rows) - len(created)
            if remedy is None:
                tally["skipped"] += len(created)
                continue
            envelopes.extend(self._events(group, created, remedy, value, now))
            tally["issued"] += len(created)
        await self.emitter.emit_envelopes(conn, envelopes)
        for incident_id, tally in counts.items():
            await conn.execute(
                sa.update(incidents)
                .where(incidents.c.incident_id == incident_id)
                .values(
                    issued=incidents.c.issued + tally["issued"],
                    skipped=incidents.c.skipped + tally["skipped"],
                    total=incidents.c.total + tally["total"],
                    updated_at=now,
                )
            )

    async def _incident_rows(self, conn: AsyncConnection, ids: set[str]) -> dict[str, sa.RowMapping]:
        """The incidents of a batch, read from the database only the first time they are seen."""
        missing = ids - self._incidents.keys()
        if missing:
            if len(self._incidents) > 1000:
                self._incidents.clear()
            found = await conn.execute(sa.select(incidents).where(incidents.c.incident_id.in_(missing)))
            self._incidents.update({r["incident_id"]: r for r in found.mappings()})
        return {i: self._incidents[i] for i in ids}

    async def _groups(self, conn: AsyncConnection, rows: list[sa.RowMapping], now: datetime) -> list[_Group]:
        by_id = await self._incident_rows(conn, {r["incident_id"] for r in rows})
        remedies = {i: Remedy.model_validate(r["remedy"]) if r["remedy"] else None for i, r in by_id.items()}
        groups: dict[tuple[str, str], _Group] = {}
        for row in rows:
            incident = by_id[row["incident_id"]]
            tier = CustomerTier(row["tier"] or CustomerTier.POTENTIAL)
            remedy, role = remedies[row["incident_id"]], Role(incident["declared_role"])
            if self.policy.incidents.exempt_from_caps:
                # Exempt from caps, the decision depends only on the tier: decide once per group.
                key = (incident["incident_id"], tier.value)
                if key not in groups:
                    decision = incident_decision(self.policy, tier, remedy, role, incident["incident_id"], [])
                    groups[key] = _Group(incident, tier, decision, shared_reasons=True)
            else:
                prior = await prior_compensations(conn, self.policy, row["customer_id"], now)
                decision = incident_decision(self.policy, tier, remedy, role, incident["incident_id"], prior)
                key = (incident["incident_id"], row["customer_id"])
                groups[key] = _Group(incident, tier, decision)
            groups[key].rows.append(row)
        return list(groups.values())

    async def _write(
        self, conn: AsyncConnection, group: _Group, remedy: Remedy | None, value: int, now: datetime
    ) -> list[tuple[str, str]]:
        """The group's compensations, their ledger entries and their removal from the queue.

        On PostgreSQL one statement does all three from two arrays (ids, customers); the ids are
        time-ordered, so the compensations' and the ledger's key indexes grow at their right edge.
        Returns (compensation id, customer id) of the compensations this call created.
        """
        customer_ids = [r["customer_id"] for r in group.rows]
        if not self.db.is_postgres:
            return await self._write_portable(conn, customer_ids, group, remedy, value, now)
        incident, decision = group.incident, group.decision
        params = {
            "ids": ordered_ids(len(customer_ids)),
            "customers": customer_ids,
            "seqs": [r["seq"] for r in group.rows],
            "incident_id": incident["incident_id"],
            "status": "issued" if remedy else "skipped",
            "tier": group.tier.value,
            "options": json.dumps([o.model_dump(mode="json") for o in decision.options]),
            "default_option_id": decision.default_option_id,
            "chosen_option_id": remedy.option_id if remedy else None,
            "acting_role": incident["declared_role"],
            "value": value,
            "currency": decision.currency,
            # Reasons shared by the whole tier live once on the incident (`decisions`), not a million times.
            "reasons": json.dumps([] if group.shared_reasons else decision.reasons),
            "policy_version": decision.policy_version,
            "decided_by": incident["declared_by"],
            "correlation_id": incident["correlation_id"],
            "now": now,
            "pays": remedy is not None,
            "kind": remedy.kind if remedy else None,
            "amount": remedy.amount_minor if remedy else 0,
            "points": remedy.points if remedy else 0,
            "percent": remedy.percent if remedy else 0,
        }
        return [(r.compensation_id, r.customer_id) for r in await conn.execute(_WRITE_GROUP, params)]

    async def _write_portable(
        self,
        conn: AsyncConnection,
        customer_ids: list[str],
        group: _Group,
        remedy: Remedy | None,
        value: int,
        now: datetime,
    ) -> list[tuple[str, str]]:
        """`_write` for SQLite (no data-modifying CTEs, no arrays): three set-based statements."""
        created = await self._compensations(conn, customer_ids, group, remedy, value, now)
        await conn.execute(
            sa.delete(incident_targets).where(
                incident_targets.c.incident_id == group.incident["incident_id"],
                any_of(conn, incident_targets.c.customer_id, customer_ids),
            )
        )
        if remedy is not None:
            await self._ledger(conn, [cid for cid, _ in created], group, remedy, value, now)
        return created

    async def _compensations(
        self,
        conn: AsyncConnection,
        customer_ids: list[str],
        group: _Group,
        remedy: Remedy | None,
        value: int,
        now: datetime,
    ) -> list[tuple[str, str]]:
        """The group's compensations, written by the database from the queue; (id, customer) of the new ones."""
        t, incident, decision = incident_targets.c, group.incident, group.decision
        values: dict[str, sa.ColumnElement[Any]] = {
            "compensation_id": new_id(conn),
            "customer_id": t.customer_id,
            "incident_id": t.incident_id,
            "reason": sa.literal("incident"),
            "status": sa.literal("issued" if remedy else "skipped"),
            "customer_tier": sa.literal(group.tier.value),
            "options": sa.literal([o.model_dump(mode="json") for o in decision.options], sa.JSON),
            "default_option_id": sa.literal(decision.default_option_id, sa.String),
            "chosen_option_id": sa.literal(remedy.option_id if remedy else None, sa.String),
            "customer_may_choose": sa.literal(False),
            "acting_role": sa.literal(incident["declared_role"]),
            "value_minor": sa.literal(value, sa.BigInteger),
            "currency": sa.literal(decision.currency),
            # Reasons shared by the whole tier live once on the incident (`decisions`), not a million times.
            "reasons": sa.literal([] if group.shared_reasons else decision.reasons, sa.JSON),
            "policy_version": sa.literal(decision.policy_version),
            "decided_by": sa.literal(incident["declared_by"]),
            "correlation_id": sa.literal(incident["correlation_id"]),
            "created_at": sa.literal(now, UtcDateTime),
            "updated_at": sa.literal(now, UtcDateTime),
        }
        select = sa.select(*values.values()).where(
            t.incident_id == incident["incident_id"], any_of(conn, t.customer_id, customer_ids)
        )
        stmt = (
            insert_for(conn, compensations)
            .from_select(list(values), select)
            .on_conflict_do_nothing()
            .returning(compensations.c.compensation_id, compensations.c.customer_id)
        )
        return [(r.compensation_id, r.customer_id) for r in await conn.execute(stmt)]

    async def _ledger(
        self, conn: AsyncConnection, ids: list[str], group: _Group, remedy: Remedy, value: int, now: datetime
    ) -> None:
        """One issue entry per compensation, written by the database (entry id = compensation id)."""
        c = compensations.c
        columns = [
            "id",
            "compensation_id",
            "entry_kind",
            "customer_id",
            "incident_id",
            "reason",
            "kind",
            "option_id",
            "amount_minor",
            "currency",
            "points",
            "percent",
            "value_minor",
            "actor",
            "issued_at",
        ]
        select = sa.select(
            c.compensation_id,
            c.compensation_id,
            sa.literal("issue"),
            c.customer_id,
            c.incident_id,
            sa.literal("incident"),
            sa.literal(remedy.kind),
            sa.literal(remedy.option_id),
            sa.literal(remedy.amount_minor, sa.BigInteger),
            sa.literal(remedy.currency),
            sa.literal(remedy.points, sa.Integer),
            sa.literal(remedy.percent, sa.Integer),
            sa.literal(value, sa.BigInteger),
            sa.literal(group.incident["declared_by"]),
            sa.literal(now, UtcDateTime),
        ).where(any_of(conn, c.compensation_id, ids))
        await conn.execute(sa.insert(compensation_ledger).from_select(columns, select))

    def _events(
        self, group: _Group, created: list[tuple[str, str]], remedy: Remedy, value: int, now: datetime
    ) -> list[Envelope]:
        """compensation.issued.v1 per customer, copied from one validated template of the group."""
        incident = group.incident
        template = new_event(
            CompensationIssued(
                compensation_id="-",
                customer_id="-",
                incident_id=incident["incident_id"],
                reason="incident",
                remedy=remedy,
                customer_tier=group.tier,
                issued_at=now,
                approved_by=incident["declared_by"],
                # A tier's full reasons travel once, on the incident; a million events carry a pointer.
                reasons=_pointer(group) if group.shared_reasons else group.decision.reasons,
                chosen_by="only_option",
                value_minor=value,
                ledger_entry_id="-",
            ),
            source=self.emitter.source,
            subject=incident["incident_id"],
            correlation_id=incident["correlation_id"],
            causation_id=incident["declared_event_id"],
            # One emit span for the whole group joins the incident's trace (not one per customer).
            traceparent=event_traceparent(incident["correlation_id"], CompensationIssued.event_type),
        )
        # Time-ordered event ids: the outbox's event id index grows at its right edge.
        event_ids = ordered_ids(len(created))
        return [
            template.model_copy(
                update={
                    "id": event_id,
                    "partitionkey": customer_id,
                    "data": {
                        **template.data,
                        "compensation_id": compensation_id,
                        "customer_id": customer_id,
                        "ledger_entry_id": compensation_id,
                    },
                }
            )
            for event_id, (compensation_id, customer_id) in zip(event_ids, created, strict=True)
        ]

    async def _fail_next(self, error: str) -> int:
        """Record the next queued customer as failed (its batch of one keeps failing), so the rest go on."""
        async with self.db.transaction() as conn:
            rows = await self._claim(conn, 1, self._cursor) or await self._claim(conn, 1, 0)
            if not rows:
                return 0
            row, now = rows[0], utcnow()
            await conn.execute(sa.delete(incident_targets).where(incident_targets.c.seq == row["seq"]))
            await insert_ignore_many(
                conn,
                compensations,
                [
                    {
                        "compensation_id": str(uuid.uuid4()),
                        "customer_id": row["customer_id"],
                        "incident_id": row["incident_id"],
                        "reason": "incident",
                        "status": "failed",
                        "options": [],
                        "currency": self.policy.currency,
                        "reasons": [],
                        "error": error[:2000],
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
                compensations.c.compensation_id,
            )
            await conn.execute(
                sa.update(incidents)
                .where(incidents.c.incident_id == row["incident_id"])
                .values(failed=incidents.c.failed + 1, updated_at=now)
            )
        self._cursor = row["seq"]
        return 1

    async def complete_finished(self) -> int:
        """Close running incidents with nothing queued, announcing incident.completed.v1 once."""
        served = incidents.c.issued + incidents.c.failed + incidents.c.skipped
        done = 0
        async with self.db.transaction() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(incidents)
                        .where(incidents.c.status == "running", served >= incidents.c.total)
                        .with_for_update(skip_locked=True)
                    )
                )
                .mappings()
                .all()
            )
            for row in rows:
                now = utcnow()
                await conn.execute(
                    sa.update(incidents)
                    .where(incidents.c.incident_id == row["incident_id"])
                    .values(status="completed", completed_at=now, updated_at=now)
                )
                await self.emitter.emit(
                    conn,
                    IncidentCompleted(
                        incident_id=row["incident_id"],
                        issued=int(row["issued"]),
                        failed=int(row["failed"]),
                        completed_at=now,
                        total=int(row["total"]),
                        skipped=int(row["skipped"]),
                    ),
                    subject=row["incident_id"],
                    correlation_id=row["correlation_id"],
                    causation_id=row["declared_event_id"],
                )
                done += 1
        return done
