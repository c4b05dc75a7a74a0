"""Intake follows its complaints downstream: case, compensation, loyalty and survey events fill the timeline.

Each event of a complaint (found by its ``complaint_id`` or, failing that, the correlation id every
event of a complaint carries) adds one timeline entry; lifecycle events also move the complaint's
status. An event that names neither a complaint nor a case (an incident's compensation, an order's
points) is no complaint's and is passed over unrecorded. Events can arrive out of order across
topics, so a status only replaces one that is older by event time. The shared consumer records each
event in the inbox, so a redelivery adds nothing.

A fetch's events go to the batch form as one run: its complaints are locked with one statement, its
timeline entries added with one and the complaints it changed written with one, the new status and case
worked out in memory by applying the events in fetch order, as the per-event form would.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from services.intake import store
from shared.consumer import BatchableHandler, Handler, HandlerContext
from shared.events import EVENT_TYPES, EventData
from shared.logs import correlation_id_var

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


def _complaint_of(ctx: HandlerContext, event: EventData) -> str:
    """The complaint an event belongs to: the one it names, else the one its correlation id is."""
    return getattr(event, "complaint_id", None) or ctx.envelope.correlationid


async def on_downstream_event(ctx: HandlerContext, event: EventData) -> None:
    """Put a downstream event on its complaint's timeline and move the status when it is a lifecycle step."""
    envelope = ctx.envelope
    complaint_id = _complaint_of(ctx, event)
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


async def on_downstream_events(events: list[tuple[HandlerContext, EventData]]) -> None:
    """A run of downstream events, in fetch order, with the effects of ``on_downstream_event`` on each in turn.

    Three statements whatever the run's length: lock the complaints, add the timeline entries, write the
    complaints whose status or case changed.
    """
    conn = events[0][0].conn
    targets = [_complaint_of(ctx, event) for ctx, event in events]
    rows = await store.complaints_to_follow(conn, {cid for cid in targets if cid})
    entries: list[dict[str, Any]] = []
    offered: set[str] = set()
    for (ctx, event), complaint_id in zip(events, targets, strict=True):
        envelope = ctx.envelope
        if complaint_id not in rows or envelope.id in offered:
            continue  # not ours; or the same event again, which the first one's entry already stands for
        offered.add(envelope.id)
        entries.append({"complaint_id": complaint_id, "at": envelope.time, "event_type": envelope.type,
                        "event_id": envelope.id, "status": STATUS_OF.get(envelope.type), "detail": _detail(event)})
    added = await store.add_timeline_entries(conn, entries)
    changed: dict[str, dict[str, Any]] = {}
    for (ctx, event), complaint_id in zip(events, targets, strict=True):
        envelope = ctx.envelope
        if complaint_id not in rows or envelope.id not in added:
            continue  # not ours, or already on the timeline: no effect
        added.discard(envelope.id)  # a second copy in the run finds it on the timeline
        row = rows[complaint_id]
        case_id = getattr(event, "case_id", None)
        if case_id and row["case_id"] is None:  # ``set_case`` only fills an unset case
            row["case_id"] = case_id
            changed[complaint_id] = row
        status = STATUS_OF.get(envelope.type)
        if status and _newer(envelope.time, row["status_at"]):
            row["status"], row["status_at"] = status, envelope.time
            changed[complaint_id] = row
            token = correlation_id_var.set(envelope.correlationid)  # the line carries its complaint, as one by one
            try:
                log.info("complaint %s is %s (%s)", complaint_id, status, envelope.type)
            finally:
                correlation_id_var.reset(token)
    await store.update_followed(conn, list(changed.values()))


def names_a_case_or_complaint(event: EventData) -> bool:
    """False for an event that names neither a complaint nor a case: no complaint's timeline takes it.

    Compensation and points events name a case when they come of one; those that name none (an
    incident's compensations and their points, an order's points, a manual adjustment) are passed
    over before the inbox, so an incident of a million customers costs intake no rows.
    """
    fields = vars(event)  # not getattr: a model without the field answers that through a slow error path
    return fields.get("complaint_id") is not None or fields.get("case_id") is not None


def make_handlers() -> dict[str, Handler]:
    """One handler for every followed event type, all sharing one batch form (a fetch is one run)."""
    handler = BatchableHandler(one=on_downstream_event, many=on_downstream_events, concerns=names_a_case_or_complaint)
    return dict.fromkeys(followed_event_types(), handler)
