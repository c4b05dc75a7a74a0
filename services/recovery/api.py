"""Recovery's HTTP routes."""

from fastapi import APIRouter, Depends, Query

from services.recovery.handlers import list_for_customer
from shared.auth import Operator, require_role
from shared.events.vocabulary import Role
from shared.problems import problem_responses
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["compensation"])


@router.get("/compensations", responses=problem_responses(401, 422), summary="Compensations of a customer")
async def list_compensations(
    customer_id: str = Query(min_length=1, max_length=100),
    runtime: Runtime = Depends(get_runtime),
    _op: Operator = Depends(require_role(Role.AGENT)),
) -> list[dict[str, object]]:
    """Every ledger entry of one customer, newest first."""
    async with runtime.db.engine.connect() as conn:
        return await list_for_customer(conn, customer_id)
