"""Incident-wide recovery: declare, queue every affected customer, fan out one compensation each.

Scale (a million customers) shapes the design:
- the customer list is never held in memory: an explicit list arrives in parts of at most a few
  thousand ids, a segment is read from the customer projection in keyset chunks whose cursor is
  committed with them, so collection resumes after a crash where it stopped;
- each affected customer is one `compensations` row, queued first; unique (incident, customer)
  makes every retry of a declaration, an upload or a chunk harmless;
- the fan-out claims queued rows in batches (FOR UPDATE SKIP LOCKED, so replicas share the work)
  and issues a whole batch in one transaction: multi-row inserts into the ledger and the outbox,
  one multi-row update of the rows, the incident's counters. A crash loses at most an
  uncommitted batch, which is then claimed again; nothing is paid twice;
- a rate limit (settings) keeps the fan-out from starving case work.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.recovery.decision import Decision, DecisionRequest, decide
from services.recovery.flow import ledger_entry
from services.recovery.models import compensation_ledger, compensations, customers, incidents
from services.recovery.money import remedy_value_minor
from services.recovery.policy import RecoveryPolicy
from services.recovery.schemas import IncidentIn, SegmentIn
from services.recovery.settings import Settings
from services.recovery.store import prior_compensations
from shared.auth import Operator
from shared.db import Database, utcnow
from shared.envelope import Envelope, new_event
from shared.events.compensation import CompensationIssued, IncidentCompleted, IncidentDeclared, Remedy
from shared.events.vocabulary import CustomerTier, Role
from shared.outbox import Emitter
from shared.problems import ProblemError
from shared.transient import is_transient

log = logging.getLogger(__name__)
INCIDENT_REMEDY_ID = "incident"


# --- declaring -------------------------------------------------------------------------------


def incident_decision(
    policy: RecoveryPolicy, tier: CustomerTier, remedy: Remedy | None, role: Role, incident_id: str, prior: list[Any]
) -> Decision:
    """The compensation one customer of an incident gets."""
    return decide(
        policy,
        DecisionRequest(
            customer_tier=tier,
            reason="incident",
            incident_id=incident_id,
            prior=prior,
            acting_role=role,
            requested_remedy=remedy,
        ),
    )


def check_authority(policy: RecoveryPolicy, operator: Operator, remedy: Remedy | None) -> dict[CustomerTier, Remedy]:
    """403 unless the operator may declare incidents and grant each tier's remedy alone; the remedies by tier."""
    if not operator.may(policy.incidents.declare_role):
        raise ProblemError(
            403,
            "Forbidden",
            f"declaring an incident needs role {policy.incidents.declare_role.value}",
            code="forbidden",
        )
    by_tier: dict[CustomerTier, Remedy] = {}
    for tier in CustomerTier:
        decision = incident_decision(policy, tier, remedy, operator.role, "check", [])
        if decision.needs_approval and decision.required_role is not None:
            raise ProblemError(
                403,
                "Over limit",
                f"{decision.max_value_minor / 100:.2f} {decision.currency} per {tier.value} customer is above the "
                f"{operator.role.value} limit; needs {decision.required_role.value}",
                code="over-limit",
            )
        if decision.options:
            by_tier[tier] = decision.option()
    if not by_tier:
        raise ProblemError(422, "Nothing to give", "the remedy gives no customer anything", code="empty-remedy")
    return by_tier


async def declare(
    conn: AsyncConnection, emitter: Emitter, policy: RecoveryPolicy, body: IncidentIn, operator: Operator
) -> dict[str, Any]:
    """Record the incident, queue an inline list, and announce it (incident.declared.v1)."""
    requested = body.remedy.to_remedy().model_copy(update={"option_id": INCIDENT_REMEDY_ID}) if body.remedy else None
    if requested is not None and requested.currency != policy.currency:
        raise ProblemError(422, "Wrong currency", f"remedy currency must be {policy.currency}", code="currency")
    by_tier = check_authority(policy, operator, requested)
    incident_id = body.incident_id or f"inc-{uuid.uuid4()}"
    now = utcnow()
    if await conn.scalar(sa.select(incidents.c.incident_id).where(incidents.c.incident_id == incident_id)):
        raise ProblemError(409, "Conflict", f"incident {incident_id} is already declared", code="duplicate")
    collecting = body.segment is not None or body.more_customers
    segment = body.segment.model_dump(exclude_none=True, mode="json") if body.segment else None
    base = by_tier.get(CustomerTier.POTENTIAL) or next(iter(by_tier.values()))
    env = await emitter.emit(
        conn,
        IncidentDeclared(
            incident_id=incident_id,
            title=body.title,
            started_at=body.started_at,
            declared_by=operator.subject,
            remedy=base,
            remedies_by_tier=by_tier,
            segment=segment,
            ended_at=body.ended_at,
        ),
        subject=incident_id,
        correlation_id=incident_id,
    )
    row = {
        "incident_id": incident_id,
        "title": body.title,
        "description": body.description,
        "started_at": body.started_at,
        "ended_at": body.ended_at,
        "declared_by": operator.subject,
        "declared_role": operator.role.value,
        "remedy": requested.model_dump(mode="json") if requested else None,
        "segment": segment,
        "status": "collecting" if collecting else "running",
        "collect_cursor": None,
        "total": 0,
        "issued": 0,
        "failed": 0,
        "skipped": 0,
        "correlation_id": incident_id,
        "declared_event_id": env.id,
        "created_at": now,
        "updated_at": now,
        "completed_at": None,
    }
    await conn.execute(sa.insert(incidents).values(**row))
    if body.customer_ids:
        row["total"] = await queue_customers(conn, policy, incident_id, body.customer_ids)
    return row


async def queue_customers(
    conn: AsyncConnection, policy: RecoveryPolicy, incident_id: str, customer_ids: list[str]
) -> int:
    """Queue customers of an incident (duplicates ignored); returns how many were new."""
    now = utcnow()
    rows = [
        {
            "compensation_id": str(uuid.uuid4()),
            "customer_id": cid,
            "incident_id": incident_id,
            "reason": "incident",
            "status": "queued",
            "options": [],
            "currency": policy.currency,
            "reasons": [],
            "value_minor": 0,
            "customer_may_choose": False,
            "correlation_id": incident_id,
            "created_at": now,
            "updated_at": now,
        }
        for cid in dict.fromkeys(customer_ids)
    ]
    added = len(await _insert_ignore_many(conn, compensations, rows, compensations.c.customer_id))
    if added:
        await conn.execute(
            sa.update(incidents)
            .where(incidents.c.incident_id == incident_id)
            .values(total=incidents.c.total + added, updated_at=now)
        )
    return added


async def _insert_ignore_many(
    conn: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]], returning: sa.Column[Any]
) -> list[Any]:
    """Multi-row insert skipping conflicts; returns the inserted rows' `returning` values."""
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    result = await conn.execute(insert(table).on_conflict_do_nothing().returning(returning), rows)
    return list(result.scalars())


async def lock_incident(conn: AsyncConnection, incident_id: str) -> dict[str, Any]:
    """The incident row, locked; 404 when unknown."""
    row = (
        (await conn.execute(sa.select(incidents).where(incidents.c.incident_id == incident_id).with_for_update()))
        .mappings()
        .first()
    )
    if row is None:
        raise ProblemError(404, "Not found", f"no incident {incident_id}", code="not-found")
    return dict(row)


async def add_customers(
    conn: AsyncConnection, policy: RecoveryPolicy, incident_id: str, customer_ids: list[str]
) -> dict[str, Any]:
    """Append one part of an incident's list (409 once the list is complete)."""
    row = await lock_incident(conn, incident_id)
    if row["status"] != "collecting" or row["segment"] is not None:
        raise ProblemError(
            409, "Conflict", f"incident {incident_id} takes no more customers ({row['status']})", code="list-closed"
        )
    await queue_customers(conn, policy, incident_id, customer_ids)
    return await lock_incident(conn, incident_id)


async def complete_list(conn: AsyncConnection, incident_id: str) -> dict[str, Any]:
    """Close an uploaded list: the fan-out completes once every queued customer is served."""
    row = await lock_incident(conn, incident_id)
    if row["segment"] is not None:
        raise ProblemError(409, "Conflict", "a segment's list is collected by recovery itself", code="segment")
    if row["status"] == "collecting":
        await conn.execute(
            sa.update(incidents)
            .where(incidents.c.incident_id == incident_id)
            .values(status="running", updated_at=utcnow())
        )
        row["status"] = "running"
    return row


def progress(row: dict[str, Any] | sa.RowMapping) -> dict[str, Any]:
    """The incident's counters as the API shows them."""
    done = int(row["issued"]) + int(row["failed"]) + int(row["skipped"])
    return {
        "incident_id": row["incident_id"],
        "title": row["title"],
        "status": row["status"],
        "total": int(row["total"]),
        "issued": int(row["issued"]),
        "pending": max(int(row["total"]) - done, 0),
        "failed": int(row["failed"]),
        "skipped": int(row["skipped"]),
        "collecting": row["status"] == "collecting",
        "declared_by": row["declared_by"],
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "created_at": row["created_at"],
        "completed_at": row["completed_at"],
        "remedy": row["remedy"],
        "segment": row["segment"],
    }


# --- collecting a segment ----------------------------------------------------------------------


def _segment_filter(segment: SegmentIn) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if segment.region is not None:
        conditions.append(customers.c.region == segment.region)
    if segment.tier is CustomerTier.POTENTIAL:
        # A customer loyalty never ranked is a potential customer.
        conditions.append(sa.or_(customers.c.tier == segment.tier.value, customers.c.tier.is_(None)))
    elif segment.tier is not None:
        conditions.append(customers.c.tier == segment.tier.value)
    return conditions


async def collect_once(db: Database, policy: RecoveryPolicy, chunk: int) -> int:
    """Queue the next chunk of one collecting segment; returns how many customers were read."""
    async with db.transaction() as conn:
        row = (
            (
                await conn.execute(
                    sa.select(incidents)
                    .where(incidents.c.status == "collecting", incidents.c.segment.is_not(None))
                    .order_by(incidents.c.created_at)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return 0
        query = sa.select(customers.c.customer_id).where(*_segment_filter(SegmentIn(**row["segment"])))
        if row["collect_cursor"] is not None:
            query = query.where(customers.c.customer_id > row["collect_cursor"])
        ids = list((await conn.execute(query.order_by(customers.c.customer_id).limit(chunk))).scalars())
        if ids:
            await queue_customers(conn, policy, row["incident_id"], ids)
        values: dict[str, Any] = {"updated_at": utcnow()}
        if ids:
            values["collect_cursor"] = ids[-1]
        if len(ids) < chunk:
            values["status"] = "running"
        await conn.execute(sa.update(incidents).where(incidents.c.incident_id == row["incident_id"]).values(**values))
        return len(ids)


# --- fanning out ----------------------------------------------------------------------------


@dataclass
class _Batch:
    """What one fan-out transaction writes."""

    updates: list[dict[str, Any]]
    ledger: list[dict[str, Any]]
    envelopes: list[Envelope]
    counts: dict[str, dict[str, int]]


class FanOut:
    """Issues queued incident compensations in throttled batches; run one in every replica."""

    def __init__(self, db: Database, emitter: Emitter, policy: RecoveryPolicy, settings: Settings) -> None:
        self.db = db
        self.emitter = emitter
        self.policy = policy
        self.settings = settings

    async def run(self, stopping: Any) -> None:
        """Collect segments and fan out until `stopping()` is true, throttled to the configured rate."""
        while not stopping():
            try:
                started = time.monotonic()
                done = await collect_once(self.db, self.policy, self.settings.incident_collect_chunk)
                issued = await self.fan_out_once()
                await self.complete_finished()
            except Exception as exc:
                log.warning("incident fan-out failed, retrying: %s", exc)
                await asyncio.sleep(1)
                continue
            if not done and not issued:
                await asyncio.sleep(self.settings.incident_poll_seconds)
                continue
            # Throttle: never faster than the rate, so consumers and timers keep their share.
            await asyncio.sleep(max(issued / self.settings.incident_rate_per_second - (time.monotonic() - started), 0))

    async def fan_out_once(self) -> int:
        """Claim and issue one batch; a batch that fails is retried customer by customer."""
        try:
            async with self.db.transaction() as conn:
                return await self._issue_batch(conn, self.settings.incident_batch_size)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning("incident batch failed (%s); retrying one customer at a time", exc)
        handled = 0
        for _ in range(self.settings.incident_batch_size):
            try:
                async with self.db.transaction() as conn:
                    got = await self._issue_batch(conn, 1)
            except Exception as exc:
                if is_transient(exc):
                    raise
                await self._fail_next(repr(exc))
                got = 1
            if not got:
                break
            handled += got
        return handled

    async def _claim(self, conn: AsyncConnection, limit: int) -> list[sa.RowMapping]:
        c = compensations.c
        return list(
            (
                await conn.execute(
                    sa.select(c.compensation_id, c.customer_id, c.incident_id)
                    .where(c.status == "queued")
                    .order_by(c.incident_id, c.customer_id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).mappings()
        )

    async def _issue_batch(self, conn: AsyncConnection, limit: int) -> int:
        rows = await self._claim(conn, limit)
        if not rows:
            return 0
        incident_rows = await self._incidents(conn, {r["incident_id"] for r in rows})
        tiers = await self._tiers(conn, [r["customer_id"] for r in rows])
        batch = await self._build(conn, rows, incident_rows, tiers)
        if batch.ledger:
            await conn.execute(sa.insert(compensation_ledger), batch.ledger)
        await self.emitter.emit_envelopes(conn, batch.envelopes)
        await conn.execute(_UPDATE_ROW, batch.updates)
        for incident_id, counts in batch.counts.items():
            await conn.execute(
                sa.update(incidents)
                .where(incidents.c.incident_id == incident_id)
                .values(
                    issued=incidents.c.issued + counts["issued"],
                    skipped=incidents.c.skipped + counts["skipped"],
                    updated_at=utcnow(),
                )
            )
        return len(rows)

    async def _incidents(self, conn: AsyncConnection, ids: set[str]) -> dict[str, sa.RowMapping]:
        result = await conn.execute(sa.select(incidents).where(incidents.c.incident_id.in_(ids)))
        return {r["incident_id"]: r for r in result.mappings()}

    async def _tiers(self, conn: AsyncConnection, customer_ids: list[str]) -> dict[str, str | None]:
        result = await conn.execute(
            sa.select(customers.c.customer_id, customers.c.tier).where(customers.c.customer_id.in_(customer_ids))
        )
        return {r.customer_id: r.tier for r in result}

    async def _build(
        self,
        conn: AsyncConnection,
        rows: list[sa.RowMapping],
        incident_rows: dict[str, sa.RowMapping],
        tiers: dict[str, str | None],
    ) -> _Batch:
        policy, now = self.policy, utcnow()
        cache: dict[tuple[str, CustomerTier], Decision] = {}
        batch = _Batch([], [], [], {})
        for row in rows:
            incident = incident_rows[row["incident_id"]]
            tier = CustomerTier(tiers.get(row["customer_id"]) or CustomerTier.POTENTIAL)
            decision = await self._decision(conn, incident, row["customer_id"], tier, now, cache)
            counts = batch.counts.setdefault(row["incident_id"], {"issued": 0, "skipped": 0})
            if not decision.compensates:
                counts["skipped"] += 1
                batch.updates.append(_row_update(row, "skipped", tier, decision, None, 0, incident, None, now))
                continue
            counts["issued"] += 1
            remedy = decision.option()
            value = remedy_value_minor(remedy, policy, tier)
            entry_id = str(uuid.uuid4())
            env = self._issued_event(row, incident, tier, decision, remedy, value, entry_id, now)
            batch.envelopes.append(env)
            full = {
                **row,
                "case_id": None,
                "reason": "incident",
                "department": None,
                "budget_month": None,
                "decided_by": incident["declared_by"],
            }
            batch.ledger.append(ledger_entry(full, remedy, value, entry_id, now, incident["declared_by"]))
            batch.updates.append(_row_update(row, "issued", tier, decision, remedy, value, incident, env.id, now))
        return batch

    async def _decision(
        self,
        conn: AsyncConnection,
        incident: sa.RowMapping,
        customer_id: str,
        tier: CustomerTier,
        now: datetime,
        cache: dict[tuple[str, CustomerTier], Decision],
    ) -> Decision:
        remedy = Remedy.model_validate(incident["remedy"]) if incident["remedy"] else None
        role = Role(incident["declared_role"])
        if self.policy.incidents.exempt_from_caps:
            # Exempt from caps, a decision depends only on the tier: decide once per tier and batch.
            key = (incident["incident_id"], tier)
            if key not in cache:
                cache[key] = incident_decision(self.policy, tier, remedy, role, incident["incident_id"], [])
            return cache[key]
        prior = await prior_compensations(conn, self.policy, customer_id, now)
        return incident_decision(self.policy, tier, remedy, role, incident["incident_id"], prior)

    def _issued_event(
        self,
        row: sa.RowMapping,
        incident: sa.RowMapping,
        tier: CustomerTier,
        decision: Decision,
        remedy: Remedy,
        value: int,
        entry_id: str,
        now: datetime,
    ) -> Envelope:
        data = CompensationIssued(
            compensation_id=row["compensation_id"],
            customer_id=row["customer_id"],
            incident_id=row["incident_id"],
            reason="incident",
            remedy=remedy,
            customer_tier=tier,
            issued_at=now,
            approved_by=incident["declared_by"],
            reasons=decision.reasons,
            chosen_by="only_option",
            value_minor=value,
            ledger_entry_id=entry_id,
        )
        return new_event(
            data,
            source=self.emitter.source,
            subject=row["incident_id"],
            correlation_id=incident["correlation_id"],
            causation_id=incident["declared_event_id"],
        )

    async def _fail_next(self, error: str) -> None:
        """Mark the next queued customer failed (its batch of one keeps failing), so the rest go on."""
        async with self.db.transaction() as conn:
            rows = await self._claim(conn, 1)
            if not rows:
                return
            row = rows[0]
            await conn.execute(
                sa.update(compensations)
                .where(compensations.c.compensation_id == row["compensation_id"])
                .values(status="failed", error=error[:2000], updated_at=utcnow())
            )
            await conn.execute(
                sa.update(incidents)
                .where(incidents.c.incident_id == row["incident_id"])
                .values(failed=incidents.c.failed + 1, updated_at=utcnow())
            )

    async def complete_finished(self) -> int:
        """Close running incidents with nothing queued, announcing incident.completed.v1 once."""
        queued = sa.exists().where(
            compensations.c.incident_id == incidents.c.incident_id, compensations.c.status == "queued"
        )
        done = 0
        async with self.db.transaction() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(incidents)
                        .where(incidents.c.status == "running", ~queued)
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


_UPDATE_ROW = (
    sa.update(compensations)
    .where(compensations.c.compensation_id == sa.bindparam("b_id"), compensations.c.status == "queued")
    .values(
        status=sa.bindparam("b_status"),
        customer_tier=sa.bindparam("b_tier"),
        options=sa.bindparam("b_options", type_=sa.JSON),
        default_option_id=sa.bindparam("b_default"),
        chosen_option_id=sa.bindparam("b_chosen"),
        acting_role=sa.bindparam("b_role"),
        value_minor=sa.bindparam("b_value"),
        reasons=sa.bindparam("b_reasons", type_=sa.JSON),
        policy_version=sa.bindparam("b_policy"),
        decided_by=sa.bindparam("b_by"),
        last_event_id=sa.bindparam("b_event"),
        updated_at=sa.bindparam("b_at"),
    )
)


def _row_update(
    row: sa.RowMapping,
    status: str,
    tier: CustomerTier,
    decision: Decision,
    remedy: Remedy | None,
    value: int,
    incident: sa.RowMapping,
    event_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "b_id": row["compensation_id"],
        "b_status": status,
        "b_tier": tier.value,
        "b_options": [o.model_dump(mode="json") for o in decision.options],
        "b_default": decision.default_option_id,
        "b_chosen": remedy.option_id if remedy else None,
        "b_role": incident["declared_role"],
        "b_value": value,
        "b_reasons": decision.reasons,
        "b_policy": decision.policy_version,
        "b_by": incident["declared_by"],
        "b_event": event_id,
        "b_at": now,
    }
