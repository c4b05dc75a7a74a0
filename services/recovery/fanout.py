"""The incident fan-out: issue every queued incident compensation, a batch per transaction.

Built for a million customers:
- claims queued customers (`incident_targets`) in (incident, customer) order with FOR UPDATE SKIP
  LOCKED, so replicas share the work, and remembers where it stopped (a keyset cursor), so it never
  rescans the dead rows of the customers it already served; when the cursor runs dry it sweeps once
  from the start for rows it skipped;
- customers of one incident and tier get the same decision, made once; each group is written by
  set-based statements the database runs (INSERT ... SELECT of the compensations from the queue,
  of the ledger entries from the compensations, DELETE of the queue rows); only the events are
  built per customer, from one validated template;
- a crash loses at most the uncommitted batch, which is claimed again: the compensation, its ledger
  entry, its event and the removal from the queue commit together, so nothing is paid twice;
- a rate limit keeps consumers and timers of case work served.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.recovery.decision import Decision
from services.recovery.incidents import collect_once, incident_decision
from services.recovery.models import compensation_ledger, compensations, customers, incident_targets, incidents
from services.recovery.money import remedy_value_minor
from services.recovery.policy import RecoveryPolicy
from services.recovery.settings import Settings
from services.recovery.store import id_in, insert_for, insert_ignore_many, new_id, prior_compensations
from shared.db import Database, UtcDateTime, utcnow
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


def _pointer(group: _Group) -> list[str]:
    incident = group.incident
    return [f"incident.{incident['incident_id']}: the {group.tier.value} remedy declared by {incident['declared_by']}"]


class FanOut:
    """Issues queued incident compensations in throttled batches; run one in every replica."""

    def __init__(self, db: Database, emitter: Emitter, policy: RecoveryPolicy, settings: Settings) -> None:
        self.db = db
        self.emitter = emitter
        self.policy = policy
        self.settings = settings
        # (incident_id, customer_id) of the last claimed row: the next claim starts after it.
        self._cursor: tuple[str, str] | None = None

    async def run(self, stopping: Callable[[], bool]) -> None:
        """Collect segments and fan out until `stopping()` is true, throttled to the configured rate."""
        while not stopping():
            try:
                started = time.monotonic()
                collected = await collect_once(self.db, self.policy, self.settings.incident_collect_chunk)
                issued = await self.fan_out_once()
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
            rows = await self._claim(conn, limit, self._cursor)
            if not rows and self._cursor is not None:
                # Sweep from the start once: rows skipped while locked elsewhere, or queued behind us.
                rows = await self._claim(conn, limit, None)
            if not rows:
                self._cursor = None
                return 0
            await self._issue(conn, rows)
        self._cursor = (rows[-1]["incident_id"], rows[-1]["customer_id"])
        return len(rows)

    async def _claim(self, conn: AsyncConnection, limit: int, after: tuple[str, str] | None) -> list[sa.RowMapping]:
        t = incident_targets.c
        query = (
            sa.select(t.incident_id, t.customer_id, customers.c.tier)
            .select_from(incident_targets.outerjoin(customers, customers.c.customer_id == t.customer_id))
            .order_by(t.incident_id, t.customer_id)
            .limit(limit)
            .with_for_update(of=incident_targets, skip_locked=True)
        )
        if after is not None:
            query = query.where(sa.tuple_(t.incident_id, t.customer_id) > after)
        return list((await conn.execute(query)).mappings())

    async def _issue(self, conn: AsyncConnection, rows: list[sa.RowMapping]) -> None:
        now = utcnow()
        envelopes: list[Envelope] = []
        counts: dict[str, dict[str, int]] = {}
        for group in await self._groups(conn, rows, now):
            incident_id = group.incident["incident_id"]
            tally = counts.setdefault(incident_id, {"issued": 0, "skipped": 0, "total": 0})
            customer_ids = [r["customer_id"] for r in group.rows]
            remedy = group.decision.option() if group.decision.compensates else None
            value = remedy_value_minor(remedy, self.policy, group.tier) if remedy else 0
            created = await self._compensations(conn, customer_ids, group, remedy, value, now)
            # A customer compensated already (queued again by a late retry) is not a new one.
            tally["total"] -= len(customer_ids) - len(created)
            await conn.execute(
                sa.delete(incident_targets).where(
                    incident_targets.c.incident_id == incident_id,
                    id_in(conn, incident_targets.c.customer_id, customer_ids),
                )
            )
            if remedy is None:
                tally["skipped"] += len(created)
                continue
            await self._ledger(conn, [cid for cid, _ in created], group, remedy, value, now)
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

    async def _groups(self, conn: AsyncConnection, rows: list[sa.RowMapping], now: datetime) -> list[_Group]:
        ids = {r["incident_id"] for r in rows}
        found = await conn.execute(sa.select(incidents).where(incidents.c.incident_id.in_(ids)))
        by_id = {r["incident_id"]: r for r in found.mappings()}
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
            t.incident_id == incident["incident_id"], id_in(conn, t.customer_id, customer_ids)
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
        ).where(id_in(conn, c.compensation_id, ids))
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
        return [
            template.model_copy(
                update={
                    "id": str(uuid.uuid4()),
                    "partitionkey": customer_id,
                    "data": {
                        **template.data,
                        "compensation_id": compensation_id,
                        "customer_id": customer_id,
                        "ledger_entry_id": compensation_id,
                    },
                }
            )
            for compensation_id, customer_id in created
        ]

    async def _fail_next(self, error: str) -> int:
        """Record the next queued customer as failed (its batch of one keeps failing), so the rest go on."""
        async with self.db.transaction() as conn:
            rows = await self._claim(conn, 1, self._cursor) or await self._claim(conn, 1, None)
            if not rows:
                return 0
            row, now = rows[0], utcnow()
            self._cursor = (row["incident_id"], row["customer_id"])
            t = incident_targets.c
            await conn.execute(
                sa.delete(incident_targets).where(
                    t.incident_id == row["incident_id"], t.customer_id == row["customer_id"]
                )
            )
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
