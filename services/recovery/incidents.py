"""Incident-wide recovery: declare, queue every affected customer, fan out one compensation each.

Scale (a million customers) shapes the design:
- the customer list is never held in memory: an explicit list arrives in parts of at most a few
  thousand ids, a segment is read from the customer projection in keyset chunks whose cursor is
  committed with them, so collection resumes after a crash where it stopped;
- each affected customer is first a row of the lean `incident_targets` queue; unique
  (incident, customer) there and in `compensations` makes every retry of a declaration, an upload
  or a chunk harmless;
- the fan-out (fanout.py) turns queued customers into compensations in batches.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from services.recovery.decision import Decision, DecisionRequest, decide
from services.recovery.models import compensations, customers, incident_targets, incidents
from services.recovery.policy import RecoveryPolicy
from services.recovery.schemas import IncidentIn, SegmentIn
from services.recovery.store import insert_ignore_many
from shared.auth import Operator
from shared.db import Database, UtcDateTime, any_of, utcnow
from shared.events.compensation import IncidentDeclared, Remedy
from shared.events.vocabulary import CustomerTier, Role
from shared.outbox import Emitter
from shared.problems import ProblemError

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


def check_authority(policy: RecoveryPolicy, operator: Operator, remedy: Remedy | None) -> dict[CustomerTier, Decision]:
    """403 unless the operator may declare incidents and grant each tier's remedy alone; the decisions by tier."""
    if not operator.may(policy.incidents.declare_role):
        raise ProblemError(
            403,
            "Forbidden",
            f"declaring an incident needs role {policy.incidents.declare_role.value}",
            code="forbidden",
        )
    by_tier: dict[CustomerTier, Decision] = {}
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
        by_tier[tier] = decision
    if not any(d.compensates for d in by_tier.values()):
        raise ProblemError(422, "Nothing to give", "the remedy gives no customer anything", code="empty-remedy")
    return by_tier


async def declare(
    conn: AsyncConnection, emitter: Emitter, policy: RecoveryPolicy, body: IncidentIn, operator: Operator
) -> dict[str, Any]:
    """Record the incident, queue an inline list, and announce it (incident.declared.v1)."""
    requested = body.remedy.to_remedy().model_copy(update={"option_id": INCIDENT_REMEDY_ID}) if body.remedy else None
    if requested is not None and requested.currency != policy.currency:
        raise ProblemError(422, "Wrong currency", f"remedy currency must be {policy.currency}", code="currency")
    decisions = check_authority(policy, operator, requested)
    by_tier = {tier: d.option() for tier, d in decisions.items() if d.compensates}
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
        "decisions": {
            tier.value: {"options": [o.model_dump(mode="json") for o in d.options], "reasons": d.reasons}
            for tier, d in decisions.items()
        },
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


# A part of a list in one round trip (PostgreSQL): the ids as one array, queued unless queued or
# compensated already, in the order given; the incident's total grows by how many were new.
_QUEUE = (
    sa.text(
        """
WITH added AS (
    INSERT INTO incident_targets (incident_id, customer_id)
    SELECT CAST(:incident_id AS varchar), u.customer_id FROM unnest(:ids) WITH ORDINALITY AS u(customer_id, n)
    WHERE NOT EXISTS (
        SELECT 1 FROM compensations c
        WHERE c.incident_id = CAST(:incident_id AS varchar) AND c.customer_id = u.customer_id)
    ORDER BY u.n
    ON CONFLICT DO NOTHING
    RETURNING 1
), counted AS (
    SELECT count(*) AS n FROM added
), grown AS (
    UPDATE incidents SET total = total + counted.n, updated_at = :now FROM counted
    WHERE incident_id = CAST(:incident_id AS varchar) AND counted.n > 0
)
SELECT n FROM counted
"""
    )
    .bindparams(sa.bindparam("ids", type_=ARRAY(sa.String)), sa.bindparam("now", type_=UtcDateTime))
    .columns(n=sa.BigInteger)
)


async def queue_customers(
    conn: AsyncConnection, policy: RecoveryPolicy, incident_id: str, customer_ids: list[str]
) -> int:
    """Queue customers of an incident; ids already queued or compensated are ignored. Returns how many were new."""
    wanted = list(dict.fromkeys(customer_ids))
    if conn.dialect.name == "postgresql":
        params = {"incident_id": incident_id, "ids": wanted, "now": utcnow()}
        return int((await conn.execute(_QUEUE, params)).scalar_one())
    served = set(
        (
            await conn.execute(
                sa.select(compensations.c.customer_id).where(
                    compensations.c.incident_id == incident_id, any_of(conn, compensations.c.customer_id, wanted)
                )
            )
        ).scalars()
    )
    rows = [{"incident_id": incident_id, "customer_id": cid} for cid in wanted if cid not in served]
    added = len(await insert_ignore_many(conn, incident_targets, rows, incident_targets.c.customer_id))
    if added:
        await conn.execute(
            sa.update(incidents)
            .where(incidents.c.incident_id == incident_id)
            .values(total=incidents.c.total + added, updated_at=utcnow())
        )
    return added


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
    added = await queue_customers(conn, policy, incident_id, customer_ids)
    # The row is locked: what the part added is all that changed in it.
    return {**row, "total": int(row["total"]) + added, "updated_at": utcnow() if added else row["updated_at"]}


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
        if row is None or not row["segment"]:
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
