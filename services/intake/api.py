"""Intake's HTTP routes."""

import uuid

import sqlalchemy as sa
from fastapi import APIRouter, Depends

from services.intake.models import complaints
from services.intake.schemas import ComplaintAccepted, WebComplaint
from shared.db import utcnow
from shared.events.complaints import Classification, ComplaintReceived
from shared.events.vocabulary import Category, Channel
from shared.logs import correlation_id_var
from shared.problems import ProblemError, problem_responses
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["complaints"])


@router.post(
    "/channels/{channel}/complaints",
    status_code=202,
    response_model=ComplaintAccepted,
    responses=problem_responses(404, 422),
    summary="Submit one complaint from a channel",
)
async def submit_complaint(
    channel: Channel, body: WebComplaint, runtime: Runtime = Depends(get_runtime)
) -> ComplaintAccepted:
    """Store the complaint and publish ``complaint.received.v1`` through the outbox."""
    complaint_id = str(uuid.uuid4())
    now = utcnow()
    classification = Classification(category=Category.OTHER, reasons=["default category"])
    async with runtime.db.transaction() as conn:
        await conn.execute(
            sa.insert(complaints).values(
                id=complaint_id, customer_id=body.customer_id, channel=channel.value, external_ref=body.external_ref,
                text=body.text, language="en", category=classification.category.value, status="received",
                received_at=now,
            )
        )
        event = ComplaintReceived(
            complaint_id=complaint_id, customer_id=body.customer_id, channel=channel, received_at=now,
            text=body.text, external_ref=body.external_ref, classification=classification,
        )
        await runtime.emitter.emit(
            conn, event, subject=complaint_id, correlation_id=complaint_id, traceparent=None
        )
    correlation_id_var.set(complaint_id)
    return ComplaintAccepted(
        complaint_id=complaint_id, customer_id=body.customer_id, channel=channel,
        category=classification.category, status="received", received_at=now,
    )


@router.get("/complaints/{complaint_id}", responses=problem_responses(404), summary="One complaint")
async def get_complaint(complaint_id: str, runtime: Runtime = Depends(get_runtime)) -> dict[str, object]:
    """The complaint as intake stored it."""
    async with runtime.db.engine.connect() as conn:
        row = (await conn.execute(sa.select(complaints).where(complaints.c.id == complaint_id))).mappings().first()
    if row is None:
        raise ProblemError(404, "Not found", f"complaint {complaint_id} does not exist", code="not-found")
    return dict(row)
