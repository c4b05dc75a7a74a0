"""Recovery's HTTP routes for incident-wide recovery: declare, upload the list, follow progress."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from services.recovery import incidents as inc
from services.recovery.models import incidents
from services.recovery.policy import RecoveryPolicy
from services.recovery.schemas import CustomerIdsIn, IncidentIn, IncidentProgress
from services.recovery.web import PRINTABLE, get_policy, write
from shared.auth import Operator, require_role
from shared.events.vocabulary import Role
from shared.problems import ProblemError, problem_responses
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1/incidents", tags=["incidents"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
IncidentId = Annotated[str, Path(min_length=1, max_length=60, pattern=PRINTABLE)]
Agent = Annotated[Operator, Depends(require_role(Role.AGENT))]
Policy = Annotated[RecoveryPolicy, Depends(get_policy)]
Rt = Annotated[Runtime, Depends(get_runtime)]
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)


def _may_manage(policy: RecoveryPolicy, operator: Operator) -> None:
    if not operator.may(policy.incidents.declare_role):
        raise ProblemError(
            403, "Forbidden", f"incidents need role {policy.incidents.declare_role.value}", code="forbidden"
        )


@router.post(
    "",
    status_code=201,
    response_model=IncidentProgress,
    responses=WRITE_ERRORS,
    summary="Declare an incident and the customers it hit",
)
async def declare_incident(
    body: IncidentIn,
    runtime: Rt,
    policy: Policy,
    operator: Agent,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """One compensation per affected customer follows, in the background; follow it with GET."""

    async def work(conn: AsyncConnection) -> tuple[int, Any]:
        return 201, inc.progress(await inc.declare(conn, runtime.emitter, policy, body, operator))

    return await write(runtime, "recovery.incident", idempotency_key, body.model_dump(mode="json"), work)


@router.post(
    "/{incident_id}/customers",
    response_model=IncidentProgress,
    responses=WRITE_ERRORS,
    summary="Add one part of an incident's customer list",
)
async def add_customers(
    incident_id: IncidentId,
    body: CustomerIdsIn,
    runtime: Rt,
    policy: Policy,
    operator: Agent,
) -> JSONResponse:
    """Up to 5,000 ids per request; ids already queued are ignored, so a retried part is harmless."""
    _may_manage(policy, operator)

    async def work(conn: AsyncConnection) -> tuple[int, Any]:
        return 200, inc.progress(await inc.add_customers(conn, policy, incident_id, body.customer_ids))

    return await write(runtime, "recovery.incident.customers", None, body.model_dump(), work)


@router.post(
    "/{incident_id}/complete",
    response_model=IncidentProgress,
    responses=WRITE_ERRORS,
    summary="Close an incident's uploaded customer list",
)
async def complete_list(incident_id: IncidentId, runtime: Rt, policy: Policy, operator: Agent) -> JSONResponse:
    """The incident completes once every queued customer is compensated."""
    _may_manage(policy, operator)

    async def work(conn: AsyncConnection) -> tuple[int, Any]:
        return 200, inc.progress(await inc.complete_list(conn, incident_id))

    return await write(runtime, "recovery.incident.complete", None, {"incident_id": incident_id}, work)


@router.get(
    "/{incident_id}",
    response_model=IncidentProgress,
    responses=problem_responses(401, 404),
    summary="Progress of an incident's fan-out",
)
async def get_incident(incident_id: IncidentId, runtime: Rt, _op: Agent) -> dict[str, Any]:
    """Counts of customers issued, pending, failed and skipped."""
    async with runtime.db.engine.connect() as conn:
        row = (
            (await conn.execute(sa.select(incidents).where(incidents.c.incident_id == incident_id))).mappings().first()
        )
    if row is None:
        raise ProblemError(404, "Not found", f"no incident {incident_id}", code="not-found")
    return inc.progress(row)


@router.get(
    "", response_model=list[IncidentProgress], responses=problem_responses(401, 422), summary="Recent incidents"
)
async def list_incidents(
    runtime: Rt,
    _op: Agent,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[dict[str, Any]]:
    """Newest first."""
    async with runtime.db.engine.connect() as conn:
        rows = await conn.execute(sa.select(incidents).order_by(incidents.c.created_at.desc()).limit(limit))
        return [inc.progress(r) for r in rows.mappings()]
