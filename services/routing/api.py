"""Routing's HTTP routes."""

import sqlalchemy as sa
from fastapi import APIRouter, Depends

from services.routing.models import cases
from services.routing.schemas import ResolveCase
from shared.auth import Operator, require_role
from shared.db import utcnow
from shared.events.cases import CaseResolved
from shared.events.vocabulary import Category, CustomerTier, Role, Severity
from shared.problems import ProblemError, problem_responses
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["cases"])


async def _load_case(conn, case_id: str) -> sa.RowMapping:  # type: ignore[no-untyped-def]
    row = (await conn.execute(sa.select(cases).where(cases.c.id == case_id))).mappings().first()
    if row is None:
        raise ProblemError(404, "Not found", f"case {case_id} does not exist", code="not-found")
    return row


@router.get("/cases/{case_id}", responses=problem_responses(401, 404), summary="One case")
async def get_case(
    case_id: str, runtime: Runtime = Depends(get_runtime), _op: Operator = Depends(require_role(Role.AGENT))
) -> dict[str, object]:
    """The case with its state and deadlines."""
    async with runtime.db.engine.connect() as conn:
        return dict(await _load_case(conn, case_id))


@router.post("/cases/{case_id}/resolve", responses=problem_responses(401, 403, 404, 409, 422), summary="Resolve a case")
async def resolve_case(
    case_id: str,
    body: ResolveCase,
    runtime: Runtime = Depends(get_runtime),
    operator: Operator = Depends(require_role(Role.AGENT)),
) -> dict[str, object]:
    """Resolve an open case and publish ``case.resolved.v1``."""
    async with runtime.db.transaction() as conn:
        row = await _load_case(conn, case_id)
        if row["state"] == "resolved":
            raise ProblemError(409, "Conflict", "case is already resolved", code="illegal-transition")
        now = utcnow()
        await conn.execute(
            sa.update(cases)
            .where(cases.c.id == case_id)
            .values(state="resolved", resolved_at=now, resolution_code=body.resolution_code)
        )
        await runtime.emitter.emit(
            conn,
            CaseResolved(
                case_id=case_id,
                complaint_id=row["complaint_id"],
                customer_id=row["customer_id"],
                severity=Severity(row["severity"]),
                category=Category(row["category"]),
                queue=row["queue"],
                customer_tier=CustomerTier(row["customer_tier"]),
                resolution_code=body.resolution_code,
                first_handling=body.first_handling,
                sla_breached=now > row["resolution_due"],
                resolved_at=now,
                resolved_by=operator.subject,
            ),
            subject=case_id,
            correlation_id=row["complaint_id"],
        )
    return {"case_id": case_id, "state": "resolved", "resolved_at": now}
