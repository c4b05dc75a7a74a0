"""Intake follows its complaints downstream: case, compensation, loyalty and survey events fill the timeline.

Each event of a complaint (found by its ``complaint_id`` or, failing that, the correlation id every
event of a complaint carries) adds one timeline entry; lifecycle events also move the complaint's
status. Events can arrive out of order across topics, so a status only replaces one that is older
by event time. The shared consumer records each event in the inbox, so a redelivery adds nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from services.intake import store
from shared.consumer import Handler, HandlerContext
from shared.events import EVENT_TYPES, EventData

log = logging.getLogger(__name__)

# Events that change where the complaint stands, and the status each one means.
STATUS_OF: dict[str, str] = {
    "case.routed.v1": "routed",
    "case.acknowledged.v1": "in_progress",
    "case.paused.v1": "waiting",
    "case.resumed.v1": "in_progress",
    "case.resolved.v1": "resolved",
    "case.reopened.v1": "reopened",
}
# Every event type of these prefixes is followed.
FOLLOWED_PREFIXES = ("case.", "compensation.", "loyalty.points_changed", "survey.")
_SKIPPED_FIELDS = {"complaint_id", "customer_id"}
_MAX_DETAIL_CHARS = 300


def followed_event_types() -> list[str]:
    """The downstream event types that feed the timeline."""
    return sorted(t for t in EVENT_TYPES if t.startswith(FOLLOWED_PREFIXES))


def _detail(event: EventData) -> dict[str, Any]:
    """The event's own facts for the timeline, without ids already known and without long free text."""
    data = event.model_dump(mode="json", exclude_none=True)
    detail: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SKIPPED_FIELDS:
            continue
        if isinstance(value, str) and len(value) > _MAX_DETAIL_CHARS:
            value = value[:_MAX_DETAIL_CHARS] + "…"
        detail[key] = value
    return detail


def _newer(at: datetime, than: datetime | None) -> bool:
    return than is None or at >= than


async def on_downstream_event(ctx: HandlerContext, event: EventData) -> None:
    """Put a downstream event on its complaint's timeline and move the status when it is a lifecycle step."""
    envelope = ctx.envelope
    complaint_id = getattr(event, "complaint_id", None) or envelope.correlationid
    row = await store.complaint(ctx.conn, complaint_id, lock=True)
    if row is None:
        return  # not a complaint of ours (an incident, a manual adjustment, another intake's data)
    status = STATUS_OF.get(envelope.type)
    added = await store.add_timeline(
        ctx.conn, complaint_id, envelope.time, envelope.type, envelope.id, status, _detail(event)
    )
    if not added:
        return
    case_id = getattr(event, "case_id", None)
    if case_id and not row["case_id"]:
        await store.set_case(ctx.conn, complaint_id, case_id)
    if status and _newer(envelope.time, row["status_at"]):
        await store.set_status(ctx.conn, complaint_id, status, envelope.time)
        log.info("complaint %s is %s (%s)", complaint_id, status, envelope.type)


def make_handlers() -> dict[str, Handler]:
    """One handler for every followed event type."""
    return dict.fromkeys(followed_event_types(), on_downstream_event)
