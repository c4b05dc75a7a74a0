"""Recovery's HTTP routes for compensations: policy, previews, listings, offers, approvals, reversals."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from services.recovery import flow
from services.recovery.caps import counted
from services.recovery.decision import Decision
from services.recovery.models import budgets, compensation_ledger, compensations, customers, incidents
from services.recovery.policy import RecoveryPolicy
from services.recovery.schemas import (
    AcceptIn,
    ApproveIn,
    BudgetOut,
    CompensationDetail,
    CompensationOut,
    CompensationPage,
    CustomerOut,
    LedgerEntryOut,
    ManualCompensationIn,
    RejectIn,
    ReverseIn,
)
from services.recovery.store import UNASSIGNED, get_case, ledger_entries, prior_compensations, tier_of
from services.recovery.web import PRINTABLE, cursor_time, decode_cursor, encode_cursor, get_policy, write
from shared.auth import Operator, require_role
from shared.db import utcnow
from shared.events.compensation import CompensationReason
from shared.events.vocabulary import Department, Role, Severity
from shared.problems import FieldError, ProblemError, problem_responses
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["compensation"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
CompensationId = Annotated[str, Path(min_length=1, max_length=40, pattern=PRINTABLE)]
Agent = Annotated[Operator, Depends(require_role(Role.AGENT))]
Supervisor = Annotated[Operator, Depends(require_role(Role.SUPERVISOR))]
Policy = Annotated[RecoveryPolicy, Depends(get_policy)]
Rt = Annotated[Runtime, Depends(get_runtime)]
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)


def compensation_out(row: dict[str, Any] | sa.RowMapping) -> dict[str, Any]:
    """A compensation row as the API shows it."""
    return CompensationOut.model_validate(dict(row)).model_dump(mode="json")


@router.get("/policy", responses=problem_responses(401), summary="The recovery policy in force")
async def get_policy_doc(policy: Policy, _op: Agent) -> dict[str, Any]:
    """The whole policy file as loaded and validated at start (its `version` names it)."""
    return policy.model_dump(mode="json")


@router.get(
    "/cases/{case_id}/decision",
    response_model=Decision,
    responses=problem_responses(401, 404, 422),
    summary="Preview the decision for a case without issuing it",
)
async def preview_case(
    runtime: Rt,
    policy: Policy,
    operator: Agent,
    case_id: Annotated[str, Path(min_length=1, max_length=40, pattern=PRINTABLE)],
    reason: Annotated[CompensationReason, Query()] = "case_resolved",
    role: Annotated[Role | None, Query(description="Acting role; default: yours.")] = None,
) -> Decision:
    """What recovery would decide for this case now, with every rule's reason; nothing is written."""
    if reason in ("incident", "manual"):
        raise ProblemError(
            422,
            "Validation failed",
            "preview covers case reasons only",
            code="validation",
            errors=[FieldError(field="query.reason", message="use case_resolved, sla_breach or low_survey")],
        )
    async with runtime.db.engine.connect() as conn:
        case = await get_case(conn, case_id)
        if case is None:
            raise ProblemError(404, "Not found", f"no case {case_id} is known to recovery", code="unknown-case")
        trigger = flow.Trigger(
            customer_id=case["customer_id"],
            reason=reason,
            correlation_id=case["correlation_id"] or case_id,
            case_id=case_id,
            severity=Severity(case["severity"]),
            tier_hint=tier_of(None, case["customer_tier"]),
            department=case["department"],
            resolution_code=case["resolution_code"],
            sla_breached=bool(case["sla_breached"]),
            first_handling_failed=case["first_handling"] is False,
            acting_role=role or operator.role,
        )
        return await flow.preview(conn, policy, trigger)


@router.get(
    "/compensations",
    response_model=CompensationPage,
    responses=problem_responses(401, 422),
    summary="Compensations of a customer, a case or an incident",
)
async def list_compensations(
    runtime: Rt,
    _op: Agent,
    customer_id: Annotated[str | None, Query(min_length=1, max_length=100, pattern=PRINTABLE)] = None,
    case_id: Annotated[str | None, Query(min_length=1, max_length=40, pattern=PRINTABLE)] = None,
    incident_id: Annotated[str | None, Query(min_length=1, max_length=60, pattern=PRINTABLE)] = None,
    status: Annotated[str | None, Query(pattern=r"^[a-z_]{1,20}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """Newest first for a customer or a case; by customer id for an incident (it may have millions)."""
    c = compensations.c
    filters = [
        f
        for f in (
            c.customer_id == customer_id if customer_id else None,
            c.case_id == case_id if case_id else None,
            c.incident_id == incident_id if incident_id else None,
            c.status == status if status else None,
        )
        if f is not None
    ]
    if not (customer_id or case_id or incident_id):
        raise ProblemError(
            422,
            "Validation failed",
            "give customer_id, case_id or incident_id",
            code="validation",
            errors=[FieldError(field="query", message="one of customer_id, case_id, incident_id")],
        )
    query = sa.select(compensations).where(*filters)
    by_customer = incident_id is not None and not customer_id and not case_id
    if by_customer:
        if cursor:
            query = query.where(c.customer_id > decode_cursor(cursor, 1)[0])
        query = query.order_by(c.customer_id)
    else:
        if cursor:
            at, cid = decode_cursor(cursor, 2)
            query = query.where(sa.tuple_(c.created_at, c.compensation_id) < (cursor_time(at), cid))
        query = query.order_by(c.created_at.desc(), c.compensation_id.desc())
    async with runtime.db.engine.connect() as conn:
        rows = list((await conn.execute(query.limit(limit + 1))).mappings())
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = encode_cursor(
            [last["customer_id"]] if by_customer else [last["created_at"].isoformat(), last["compensation_id"]]
        )
    return {"items": [compensation_out(r) for r in rows], "next_cursor": next_cursor}


@router.get(
    "/compensations/{compensation_id}",
    response_model=CompensationDetail,
    responses=problem_responses(401, 404),
    summary="One compensation with its ledger entries",
)
async def get_compensation(runtime: Rt, _op: Agent, compensation_id: CompensationId) -> dict[str, Any]:
    """State, options, reasons and the append-only ledger entries of one compensation."""
    async with runtime.db.engine.connect() as conn:
        row = (
            (await conn.execute(sa.select(compensations).where(compensations.c.compensation_id == compensation_id)))
            .mappings()
            .first()
        )
        if row is None:
            raise ProblemError(404, "Not found", f"no compensation {compensation_id}", code="not-found")
        entries = await ledger_entries(conn, compensation_id)
        row = dict(row)
        if row["incident_id"] and not row["reasons"]:
            # An incident's reasons are kept once per tier on the incident, not on each of its rows.
            decisions = await conn.scalar(
                sa.select(incidents.c.decisions).where(incidents.c.incident_id == row["incident_id"])
            )
            row["reasons"] = ((decisions or {}).get(row["customer_tier"] or "") or {}).get("reasons", [])
    return {
        **compensation_out(row),
        "ledger": [LedgerEntryOut.model_validate(dict(e)).model_dump(mode="json") for e in entries],
    }


@router.post(
    "/compensations",
    status_code=201,
    response_model=CompensationOut,
    responses=WRITE_ERRORS,
    summary="Compensate a customer by hand (reason manual)",
)
async def create_manual(
    body: ManualCompensationIn,
    runtime: Rt,
    policy: Policy,
    operator: Agent,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Caps apply; above the operator's own limit it waits for approval. Once per case when a case is named."""
    if body.remedy.currency != policy.currency:
        raise ProblemError(
            422,
            "Validation failed",
            f"currency must be {policy.currency}",
            code="validation",
            errors=[FieldError(field="body.remedy.currency", message=f"must be {policy.currency}")],
        )

    async def work(conn: AsyncConnection) -> tuple[int, Any]:
        department = body.department
        severity = Severity.P3
        if body.case_id:
            case = await get_case(conn, body.case_id)
            if case is None:
                raise ProblemError(
                    404, "Not found", f"no case {body.case_id} is known to recovery", code="unknown-case"
                )
            if case["customer_id"] != body.customer_id:
                raise ProblemError(
                    422,
                    "Validation failed",
                    "the case belongs to another customer",
                    code="validation",
                    errors=[FieldError(field="body.case_id", message="not this customer's case")],
                )
            department, severity = department or case["department"], Severity(case["severity"])
        correlation = str(uuid.uuid4())
        trigger = flow.Trigger(
            customer_id=body.customer_id,
            reason="manual",
            correlation_id=correlation,
            case_id=body.case_id,
            severity=severity,
            department=department,
            requested_remedy=body.remedy.to_remedy(),
            acting_role=operator.role,
            actor=operator.subject,
            note=body.note,
            extra_reasons=[f"manual: by {operator.subject} ({operator.role.value}): {body.note[:200]}"],
        )

        async def emit(data, subject):  # type: ignore[no-untyped-def]
            return await runtime.emitter.emit(conn, data, subject=subject, correlation_id=correlation)

        outcome = await flow.open_compensation(conn, runtime.db, policy, trigger, emit)
        if outcome.compensation_id is None:
            raise ProblemError(409, "Nothing to give", "; ".join(outcome.decision.reasons[-3:]), code="no-compensation")
        row = (
            (
                await conn.execute(
                    sa.select(compensations).where(compensations.c.compensation_id == outcome.compensation_id)
                )
            )
            .mappings()
            .one()
        )
        return 201, compensation_out(row)

    return await write(runtime, "recovery.manual", idempotency_key, body.model_dump(mode="json"), work)


async def _act(runtime: Runtime, scope: str, key: str | None, body: Any, action: Any) -> JSONResponse:
    async def work(conn: AsyncConnection) -> tuple[int, Any]:
        return 200, compensation_out(await action(conn))

    return await write(runtime, scope, key, body, work)


@router.post(
    "/compensations/{compensation_id}/accept",
    response_model=CompensationOut,
    responses=WRITE_ERRORS,
    summary="Record the customer's choice among the offered options",
)
async def accept_offer(
    compensation_id: CompensationId,
    body: AcceptIn,
    runtime: Rt,
    policy: Policy,
    _op: Agent,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Issues the chosen option at once; 409 when the offer is no longer open."""
    return await _act(
        runtime,
        f"recovery.accept.{compensation_id}",
        idempotency_key,
        body.model_dump(),
        lambda conn: flow.accept(conn, runtime.emitter, policy, compensation_id, body.option_id),
    )


@router.post(
    "/compensations/{compensation_id}/approve",
    response_model=CompensationOut,
    responses=WRITE_ERRORS,
    summary="Approve a compensation waiting for approval",
)
async def approve(
    compensation_id: CompensationId,
    body: ApproveIn,
    runtime: Rt,
    policy: Policy,
    operator: Agent,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Only a role whose limit covers the value may approve (403 over-limit otherwise)."""
    return await _act(
        runtime,
        f"recovery.approve.{compensation_id}",
        idempotency_key,
        body.model_dump(),
        lambda conn: flow.approve(conn, runtime.emitter, policy, compensation_id, operator, body.note),
    )


@router.post(
    "/compensations/{compensation_id}/reject",
    response_model=CompensationOut,
    responses=WRITE_ERRORS,
    summary="Reject a compensation waiting for approval",
)
async def reject(
    compensation_id: CompensationId,
    body: RejectIn,
    runtime: Rt,
    operator: Agent,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Only a role that could approve it may reject it; the reserved budget is released."""
    return await _act(
        runtime,
        f"recovery.reject.{compensation_id}",
        idempotency_key,
        body.model_dump(),
        lambda conn: flow.reject(conn, runtime.emitter, compensation_id, operator, body.note),
    )


@router.post(
    "/compensations/{compensation_id}/reverse",
    response_model=CompensationOut,
    responses=WRITE_ERRORS,
    summary="Reverse an issued compensation (a new, negated ledger entry)",
)
async def reverse(
    compensation_id: CompensationId,
    body: ReverseIn,
    runtime: Rt,
    policy: Policy,
    operator: Supervisor,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """The original ledger entry stays; the reversal is appended and the budget credited back."""
    return await _act(
        runtime,
        f"recovery.reverse.{compensation_id}",
        idempotency_key,
        body.model_dump(),
        lambda conn: flow.reverse(conn, runtime.emitter, policy, compensation_id, operator, body.note),
    )


@router.get(
    "/ledger",
    response_model=list[LedgerEntryOut],
    responses=problem_responses(401, 422),
    summary="Ledger entries of a customer or a case, newest first",
)
async def list_ledger(
    runtime: Rt,
    _op: Agent,
    customer_id: Annotated[str | None, Query(min_length=1, max_length=100, pattern=PRINTABLE)] = None,
    case_id: Annotated[str | None, Query(min_length=1, max_length=40, pattern=PRINTABLE)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """The append-only money trail: issues are positive, reversals negative."""
    if not (customer_id or case_id):
        raise ProblemError(
            422,
            "Validation failed",
            "give customer_id or case_id",
            code="validation",
            errors=[FieldError(field="query", message="one of customer_id, case_id")],
        )
    t = compensation_ledger.c
    query = sa.select(compensation_ledger)
    if customer_id:
        query = query.where(t.customer_id == customer_id)
    if case_id:
        query = query.where(t.case_id == case_id)
    async with runtime.db.engine.connect() as conn:
        rows = await conn.execute(query.order_by(t.issued_at.desc(), t.id.desc()).limit(limit))
        return [LedgerEntryOut.model_validate(dict(r)).model_dump(mode="json") for r in rows.mappings()]


@router.get(
    "/customers/{customer_id}",
    response_model=CustomerOut,
    responses=problem_responses(401, 422),
    summary="A customer's tier and cap headroom",
)
async def get_customer(
    runtime: Rt,
    policy: Policy,
    _op: Agent,
    customer_id: Annotated[str, Path(min_length=1, max_length=100, pattern=PRINTABLE)],
) -> dict[str, Any]:
    """The projected tier (potential when loyalty never ranked them) and what the caps still allow."""
    async with runtime.db.engine.connect() as conn:
        row = (await conn.execute(sa.select(customers).where(customers.c.customer_id == customer_id))).first()
        prior = counted(await prior_compensations(conn, policy, customer_id, utcnow()), policy)
    tier = tier_of(row.tier if row else None, None)
    cap = policy.caps.for_tier(tier)
    received = sum(p.value_minor for p in prior)
    return {
        "customer_id": customer_id,
        "tier": tier,
        "tier_known": bool(row and row.tier),
        "region": row.region if row else None,
        "window_days": policy.caps.window_days,
        "received_minor": received,
        "received_count": len(prior),
        "cap_minor": cap.max_value_minor,
        "cap_count": cap.max_count,
        "headroom_minor": max(cap.max_value_minor - received, 0) if len(prior) < cap.max_count else 0,
    }


@router.get(
    "/budgets",
    response_model=list[BudgetOut],
    responses=problem_responses(401, 403, 422),
    summary="Department budgets of a month",
)
async def list_budgets(
    runtime: Rt,
    policy: Policy,
    _op: Supervisor,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="Default: this month.")] = None,
) -> list[dict[str, Any]]:
    """Monthly budget, spent, reserved (open offers and approvals) and what is left, per department."""
    month = month or policy.budgets.month_of(utcnow())
    async with runtime.db.engine.connect() as conn:
        rows = {r.department: r for r in await conn.execute(sa.select(budgets).where(budgets.c.month == month))}
    names = (
        [d.value for d in Department] + [UNASSIGNED] + sorted(set(rows) - {d.value for d in Department} - {UNASSIGNED})
    )
    out = []
    for name in names:
        row = rows.get(name)
        spent, reserved = (int(row.spent_minor), int(row.reserved_minor)) if row else (0, 0)
        monthly = policy.budgets.monthly_for(None if name == UNASSIGNED else name)
        out.append(
            {
                "department": name,
                "month": month,
                "monthly_minor": monthly,
                "spent_minor": spent,
                "reserved_minor": reserved,
                "left_minor": monthly - spent - reserved,
                "currency": policy.currency,
            }
        )
    return out
