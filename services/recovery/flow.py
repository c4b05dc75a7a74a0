"""The compensation flow: decide, then offer, wait for approval, or issue; accept, approve, reject,
expire and reverse. Every step writes its state, its ledger entry and its event in one transaction.

State machine of a compensation row:
    pending_approval --approve--> offered | issued      pending_approval --reject--> rejected
    offered --accept / expiry timer--> issued           issued --reverse--> reversed
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.recovery.decision import CaseModifiers, Decision, DecisionRequest, decide
from services.recovery.models import OPEN_STATUSES, budgets, compensation_ledger, compensations, customers
from services.recovery.money import remedy_value_minor
from services.recovery.policy import RecoveryPolicy
from services.recovery.store import (
    budget_key,
    lock_budget,
    lock_compensation,
    lock_customer,
    move_budget,
    other_cases_within,
    prior_compensations,
    tier_of,
)
from shared import timers
from shared.auth import Operator
from shared.db import Database, defer_insert, utcnow
from shared.envelope import Envelope
from shared.events import EventData
from shared.events.compensation import (
    CompensationIssued,
    CompensationOffered,
    CompensationPendingApproval,
    CompensationReason,
    CompensationRejected,
    CompensationReversed,
    Remedy,
)
from shared.events.vocabulary import ROLE_RANK, CustomerTier, Role, Severity
from shared.outbox import Emitter
from shared.problems import ProblemError

Emit = Callable[[EventData, str | None], Awaitable[Envelope]]
ChosenBy = Literal["customer", "default_on_expiry", "only_option", "no_choice"]
OFFER_TIMER = "recovery.offer_expiry"
SYSTEM_ACTOR = "recovery"


# Built once: run with a row's values as parameters (building a statement per call costs more CPU).
_INSERT_COMPENSATION = sa.insert(compensations)


@dataclass(frozen=True)
class Trigger:
    """Why a compensation is being considered, and the facts the event or the operator brought."""

    customer_id: str
    reason: CompensationReason
    correlation_id: str
    case_id: str | None = None
    severity: Severity = Severity.P3
    tier_hint: CustomerTier | None = None
    department: str | None = None
    resolution_code: str | None = None
    sla_breached: bool = False
    first_handling_failed: bool = False
    requested_remedy: Remedy | None = None
    acting_role: Role = Role.AGENT
    actor: str = SYSTEM_ACTOR
    note: str | None = None
    extra_reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """What happened: the decision, and the compensation row written (None when nothing was due)."""

    decision: Decision
    compensation_id: str | None
    status: str | None


async def decision_request(
    conn: AsyncConnection, policy: RecoveryPolicy, trigger: Trigger, now: datetime, *, lock: bool
) -> DecisionRequest:
    """Gather the facts of a decision; with `lock`, the budget and customer rows stay locked until commit."""
    charged = trigger.reason != "incident"
    month = policy.budgets.month_of(now)
    budget_left = None
    if charged and lock:
        budget_left = await lock_budget(conn, policy, trigger.department, month)
    elif charged:
        budget_left = await _peek_budget(conn, policy, trigger.department, month)
    projected = (await lock_customer(conn, trigger.customer_id))["tier"] if lock else await _peek_tier(conn, trigger)
    repeats = 0
    if trigger.reason == "case_resolved":
        repeats = await other_cases_within(conn, trigger.customer_id, trigger.case_id, now, policy.caps.window_days)
    return DecisionRequest(
        customer_tier=tier_of(projected, trigger.tier_hint),
        severity=trigger.severity,
        reason=trigger.reason,
        case_id=trigger.case_id,
        resolution_code=trigger.resolution_code,
        modifiers=CaseModifiers(
            sla_breached=trigger.sla_breached,
            repeat_complaints_30d=repeats,
            first_handling_failed=trigger.first_handling_failed,
        ),
        prior=await prior_compensations(conn, policy, trigger.customer_id, now, trigger.case_id),
        budget_left_minor=budget_left,
        acting_role=trigger.acting_role,
        requested_remedy=trigger.requested_remedy,
    )


async def _peek_budget(conn: AsyncConnection, policy: RecoveryPolicy, department: str | None, month: str) -> int:
    row = (
        await conn.execute(
            sa.select(budgets.c.spent_minor, budgets.c.reserved_minor).where(
                budgets.c.department == budget_key(department), budgets.c.month == month
            )
        )
    ).first()
    used = int(row.spent_minor) + int(row.reserved_minor) if row else 0
    return policy.budgets.monthly_for(department) - used


async def _peek_tier(conn: AsyncConnection, trigger: Trigger) -> str | None:
    return await conn.scalar(sa.select(customers.c.tier).where(customers.c.customer_id == trigger.customer_id))


async def preview(conn: AsyncConnection, policy: RecoveryPolicy, trigger: Trigger) -> Decision:
    """The decision this trigger would get now, without locking or writing anything."""
    return decide(policy, await decision_request(conn, policy, trigger, utcnow(), lock=False))


async def open_compensation(
    conn: AsyncConnection, db: Database, policy: RecoveryPolicy, trigger: Trigger, emit: Emit
) -> Outcome:
    """Decide and act: wait for approval, offer a choice, or issue at once. Once per (case, reason)."""
    now = utcnow()
    decision = decide(policy, await decision_request(conn, policy, trigger, now, lock=True))
    if not decision.compensates:
        return Outcome(decision, None, None)
    row = _new_row(policy, trigger, decision, now)
    if decision.needs_approval:
        env = await emit(_pending_event(row, decision, trigger), trigger.case_id or trigger.customer_id)
        row.update(status="pending_approval", last_event_id=env.id)
        await move_budget(conn, trigger.department, row["budget_month"], reserved=decision.max_value_minor)
    elif decision.customer_may_choose:
        await _offer(conn, db, policy, row, emit, now)
        await move_budget(conn, trigger.department, row["budget_month"], reserved=decision.max_value_minor)
    else:
        chosen: ChosenBy = "only_option" if len(decision.options) == 1 else "no_choice"
        value = await _issue(conn, policy, row, decision.option(), chosen, emit, now)
        await move_budget(conn, trigger.department, row["budget_month"], spent=value)
    await conn.execute(_INSERT_COMPENSATION, row)
    return Outcome(decision, row["compensation_id"], row["status"])


def _new_row(policy: RecoveryPolicy, trigger: Trigger, decision: Decision, now: datetime) -> dict[str, Any]:
    return {
        "compensation_id": str(uuid.uuid4()),
        "customer_id": trigger.customer_id,
        "case_id": trigger.case_id,
        "incident_id": None,
        "reason": trigger.reason,
        "status": "new",
        "customer_tier": decision.customer_tier.value,
        "severity": trigger.severity.value if trigger.reason == "case_resolved" else None,
        "department": trigger.department,
        "budget_month": policy.budgets.month_of(now),
        "options": [o.model_dump(mode="json") for o in decision.options],
        "default_option_id": decision.default_option_id,
        "chosen_option_id": None,
        "customer_may_choose": decision.customer_may_choose,
        "required_role": decision.required_role.value if decision.required_role else None,
        "acting_role": trigger.acting_role.value,
        "value_minor": decision.max_value_minor,
        "currency": decision.currency,
        "reasons": [*trigger.extra_reasons, *decision.reasons],
        "policy_version": decision.policy_version,
        "offer_expires_at": None,
        "decided_by": None,
        "note": trigger.note,
        "error": None,
        "correlation_id": trigger.correlation_id,
        "last_event_id": None,
        "created_at": now,
        "updated_at": now,
    }


def _options(row: dict[str, Any] | sa.RowMapping) -> list[Remedy]:
    return [Remedy.model_validate(o) for o in row["options"]]


def _option(row: dict[str, Any] | sa.RowMapping, option_id: str | None) -> Remedy | None:
    wanted = option_id or row["default_option_id"]
    return next((o for o in _options(row) if o.option_id == wanted), None)


def _pending_event(row: dict[str, Any], decision: Decision, trigger: Trigger) -> CompensationPendingApproval:
    assert decision.required_role is not None
    return CompensationPendingApproval(
        compensation_id=row["compensation_id"],
        customer_id=row["customer_id"],
        case_id=row["case_id"],
        reason=trigger.reason,
        remedy=decision.option(),
        required_role=decision.required_role,
        reasons=row["reasons"],
        options=decision.options,
        customer_may_choose=decision.customer_may_choose,
        value_minor=decision.max_value_minor,
    )


async def _offer(
    conn: AsyncConnection, db: Database, policy: RecoveryPolicy, row: dict[str, Any], emit: Emit, now: datetime
) -> None:
    """Offer the options; the durable timer applies the default when the offer expires."""
    expires_at = now + policy.offers.expires_after
    env = await emit(
        CompensationOffered(
            compensation_id=row["compensation_id"],
            customer_id=row["customer_id"],
            case_id=row["case_id"],
            reason=row["reason"],
            options=_options(row),
            default_option_id=row["default_option_id"],
            expires_at=expires_at,
            reasons=row["reasons"],
            customer_tier=CustomerTier(row["customer_tier"]) if row.get("customer_tier") else None,
        ),
        row["case_id"] or row["customer_id"],
    )
    row.update(status="offered", offer_expires_at=expires_at, last_event_id=env.id)
    payload = {
        "compensation_id": row["compensation_id"],
        "correlation_id": row["correlation_id"],
        "causation_id": env.id,
    }
    await timers.schedule(conn, db, OFFER_TIMER, row["compensation_id"], expires_at, payload)


async def _issue(
    conn: AsyncConnection,
    policy: RecoveryPolicy,
    row: dict[str, Any],
    remedy: Remedy,
    chosen_by: ChosenBy,
    emit: Emit,
    now: datetime,
    actor: str | None = None,
) -> int:
    """Issue `remedy`: a ledger entry, the row's new state and compensation.issued.v1; returns its value."""
    tier = CustomerTier(row["customer_tier"]) if row.get("customer_tier") else None
    value = remedy_value_minor(remedy, policy, tier)
    entry_id = str(uuid.uuid4())
    env = await emit(
        CompensationIssued(
            compensation_id=row["compensation_id"],
            customer_id=row["customer_id"],
            case_id=row["case_id"],
            incident_id=row.get("incident_id"),
            reason=row["reason"],
            remedy=remedy,
            customer_tier=tier or CustomerTier.POTENTIAL,
            department=row.get("department"),
            issued_at=now,
            approved_by=row.get("decided_by"),
            reasons=row["reasons"],
            chosen_by=chosen_by,
            value_minor=value,
            ledger_entry_id=entry_id,
        ),
        row["case_id"] or row.get("incident_id") or row["customer_id"],
    )
    # Nothing reads the entry back in this transaction: it is written with the others of the batch, at commit.
    await defer_insert(conn, compensation_ledger, [ledger_entry(row, remedy, value, entry_id, now, actor)])
    row.update(
        status="issued", chosen_option_id=remedy.option_id, value_minor=value, last_event_id=env.id, updated_at=now
    )
    return value


def ledger_entry(
    row: dict[str, Any] | sa.RowMapping,
    remedy: Remedy,
    value: int,
    entry_id: str,
    now: datetime,
    actor: str | None,
    *,
    sign: int = 1,
    reverses: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """One append-only ledger row; a reversal carries the same figures negated."""
    return {
        "id": entry_id,
        "compensation_id": row["compensation_id"],
        "entry_kind": "issue" if sign > 0 else "reversal",
        "customer_id": row["customer_id"],
        "case_id": row["case_id"],
        "incident_id": row.get("incident_id"),
        "reason": row["reason"],
        "kind": remedy.kind,
        "option_id": remedy.option_id,
        "amount_minor": sign * remedy.amount_minor,
        "currency": remedy.currency,
        "points": sign * remedy.points,
        "percent": remedy.percent,
        "value_minor": sign * value,
        "department": row.get("department"),
        "budget_month": row.get("budget_month"),
        "actor": actor or row.get("decided_by") or SYSTEM_ACTOR,
        "note": note,
        "reverses_entry_id": reverses,
        "issued_at": now,
    }


def row_emitter(conn: AsyncConnection, emitter: Emitter, row: dict[str, Any]) -> Emit:
    """Emit follow-ups of an existing compensation: same correlation id, caused by its last event."""

    async def emit(data: EventData, subject: str | None) -> Envelope:
        return await emitter.emit(
            conn,
            data,
            subject=subject,
            correlation_id=row["correlation_id"] or row["compensation_id"],
            causation_id=row["last_event_id"],
        )

    return emit


async def _locked(conn: AsyncConnection, compensation_id: str) -> dict[str, Any]:
    row = await lock_compensation(conn, compensation_id)
    if row is None:
        raise ProblemError(404, "Not found", f"no compensation {compensation_id}", code="not-found")
    return dict(row)


def _require_status(row: dict[str, Any], *allowed: str) -> None:
    if row["status"] not in allowed:
        raise ProblemError(
            409,
            "Conflict",
            f"compensation {row['compensation_id']} is {row['status']}; this needs {' or '.join(allowed)}",
            code="wrong-state",
        )


async def _save(conn: AsyncConnection, row: dict[str, Any]) -> None:
    keep = {k: v for k, v in row.items() if k != "compensation_id" and not k.startswith("_")}
    await conn.execute(
        sa.update(compensations).where(compensations.c.compensation_id == row["compensation_id"]).values(**keep)
    )


async def accept(
    conn: AsyncConnection, emitter: Emitter, policy: RecoveryPolicy, compensation_id: str, option_id: str
) -> dict[str, Any]:
    """The customer's choice: issue the chosen option and stop the expiry timer."""
    now = utcnow()
    row = await _locked(conn, compensation_id)
    emit = row_emitter(conn, emitter, row)
    _require_status(row, "offered")
    if row["offer_expires_at"] is not None and now >= row["offer_expires_at"]:
        raise ProblemError(
            409,
            "Offer expired",
            f"the offer expired at {row['offer_expires_at'].isoformat()}; the default option is being applied",
            code="offer-expired",
        )
    remedy = _option(row, option_id)
    if remedy is None:
        ids = [o.option_id for o in _options(row)]
        raise ProblemError(
            422, "Unknown option", f"option {option_id!r} is not offered; choose one of {ids}", code="unknown-option"
        )
    await _settle(conn, policy, row, remedy, "customer", emit, now)
    await timers.cancel(conn, emitter.db, OFFER_TIMER, compensation_id)
    return row


async def expire(conn: AsyncConnection, emitter: Emitter, policy: RecoveryPolicy, compensation_id: str) -> bool:
    """The offer lapsed: apply the default once (a later accept finds it issued). True when applied."""
    found = await lock_compensation(conn, compensation_id)
    if found is None or found["status"] != "offered":
        return False
    row = dict(found)
    emit = row_emitter(conn, emitter, row)
    remedy = _option(row, None)
    assert remedy is not None
    await _settle(conn, policy, row, remedy, "default_on_expiry", emit, utcnow())
    return True


async def _settle(
    conn: AsyncConnection,
    policy: RecoveryPolicy,
    row: dict[str, Any],
    remedy: Remedy,
    chosen_by: ChosenBy,
    emit: Emit,
    now: datetime,
) -> None:
    """Issue an open compensation: move its reservation to spent."""
    reserved = int(row["value_minor"])
    value = await _issue(conn, policy, row, remedy, chosen_by, emit, now)
    if row["reason"] != "incident":
        await move_budget(conn, row["department"], row["budget_month"], reserved=-reserved, spent=value)
    await _save(conn, row)


def require_authority(row: dict[str, Any], operator: Operator) -> None:
    """403 unless the operator's role may approve this compensation."""
    required = Role(row["required_role"] or Role.AGENT)
    if ROLE_RANK[operator.role] < ROLE_RANK[required]:
        raise ProblemError(
            403,
            "Over limit",
            f"role {operator.role.value} may not approve {row['value_minor'] / 100:.2f} {row['currency']}; "
            f"needs {required.value}",
            code="over-limit",
        )


async def approve(
    conn: AsyncConnection,
    emitter: Emitter,
    policy: RecoveryPolicy,
    compensation_id: str,
    operator: Operator,
    note: str | None,
) -> dict[str, Any]:
    """An approver with enough authority lets it through: offer the choice or issue at once."""
    now = utcnow()
    row = await _locked(conn, compensation_id)
    emit = row_emitter(conn, emitter, row)
    _require_status(row, "pending_approval")
    require_authority(row, operator)
    row.update(decided_by=operator.subject, note=note or row["note"], updated_at=now)
    row["reasons"] = [*row["reasons"], f"approval.granted: by {operator.subject} ({operator.role.value})"]
    if row["customer_may_choose"]:
        await _offer(conn, emitter.db, policy, row, emit, now)
        await _save(conn, row)
        return row
    remedy = _option(row, None)
    assert remedy is not None
    await _settle(conn, policy, row, remedy, "no_choice", emit, now)
    return row


async def reject(
    conn: AsyncConnection, emitter: Emitter, compensation_id: str, operator: Operator, note: str
) -> dict[str, Any]:
    """An approver turns it down: release the reservation, tell the others."""
    now = utcnow()
    row = await _locked(conn, compensation_id)
    emit = row_emitter(conn, emitter, row)
    _require_status(row, "pending_approval")
    require_authority(row, operator)
    env = await emit(
        CompensationRejected(
            compensation_id=row["compensation_id"],
            customer_id=row["customer_id"],
            case_id=row["case_id"],
            reason=row["reason"],
            rejected_by=operator.subject,
            note=note,
        ),
        row["case_id"] or row["customer_id"],
    )
    await move_budget(conn, row["department"], row["budget_month"], reserved=-int(row["value_minor"]))
    row.update(status="rejected", decided_by=operator.subject, note=note, updated_at=now, last_event_id=env.id)
    await _save(conn, row)
    return row


async def reverse(
    conn: AsyncConnection,
    emitter: Emitter,
    policy: RecoveryPolicy,
    compensation_id: str,
    operator: Operator,
    note: str,
) -> dict[str, Any]:
    """Undo an issued compensation with a new, negated ledger entry; the original entry stays."""
    now = utcnow()
    row = await _locked(conn, compensation_id)
    emit = row_emitter(conn, emitter, row)
    _require_status(row, "issued")
    remedy = _option(row, row["chosen_option_id"])
    assert remedy is not None
    issue_entry = await conn.scalar(
        sa.select(compensation_ledger.c.id).where(
            compensation_ledger.c.compensation_id == compensation_id, compensation_ledger.c.entry_kind == "issue"
        )
    )
    entry_id = str(uuid.uuid4())
    value = int(row["value_minor"])
    env = await emit(
        CompensationReversed(
            compensation_id=compensation_id,
            customer_id=row["customer_id"],
            case_id=row["case_id"],
            incident_id=row["incident_id"],
            reason=row["reason"],
            remedy=remedy,
            reversed_by=operator.subject,
            note=note,
            ledger_entry_id=entry_id,
        ),
        row["case_id"] or row["incident_id"] or row["customer_id"],
    )
    entry = ledger_entry(row, remedy, value, entry_id, now, operator.subject, sign=-1, reverses=issue_entry, note=note)
    await conn.execute(sa.insert(compensation_ledger).values(**entry))
    if row["reason"] != "incident":
        await move_budget(conn, row["department"], row["budget_month"], spent=-value)
    row.update(status="reversed", updated_at=now, last_event_id=env.id)
    await _save(conn, row)
    return row


def is_open(row: dict[str, Any] | sa.RowMapping) -> bool:
    """True while a compensation waits for approval or for the customer's choice."""
    return row["status"] in OPEN_STATUSES
