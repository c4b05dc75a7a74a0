"""Intake's reads and writes: messages, complaints, follow-ups, the timeline and used signatures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.models import complaints, messages, timeline, used_signatures
from services.intake.policy import OpenComplaint
from shared.db import insert_ignore

CLOSED_STATUSES = ("resolved", "closed")


async def claim_signature(conn: AsyncConnection, digest: str, key_id: str, now: datetime) -> bool:
    """Record a signature as used; False when it was used before (a replay)."""
    return await insert_ignore(conn, used_signatures, {"digest": digest, "key_id": key_id, "seen_at": now})


async def purge_signatures(conn: AsyncConnection, before: datetime) -> int:
    """Forget signatures older than the replay window (their timestamps are refused anyway)."""
    result = await conn.execute(sa.delete(used_signatures).where(used_signatures.c.seen_at < before))
    return result.rowcount or 0


async def message_by_ref(conn: AsyncConnection, channel: str, external_ref: str) -> dict[str, Any] | None:
    """The message a channel already sent under this reference (with the answer it got)."""
    row = (
        await conn.execute(
            sa.select(messages).where(messages.c.channel == channel, messages.c.external_ref == external_ref)
        )
    ).mappings().first()
    return dict(row) if row else None


async def recent_message_count(conn: AsyncConnection, customer_ids: list[str], since: datetime) -> int:
    """How many messages the customer sent since ``since`` (every channel, complaints and follow-ups)."""
    query = sa.select(sa.func.count()).where(messages.c.customer_id.in_(customer_ids), messages.c.received_at >= since)
    return int(await conn.scalar(query) or 0)


async def open_complaints(
    conn: AsyncConnection, customer_ids: list[str], since: datetime, limit: int
) -> list[OpenComplaint]:
    """The customer's complaints still open and active since ``since``, newest first, with their e-mail ids."""
    rows = (
        await conn.execute(
            sa.select(complaints.c.id, complaints.c.text, complaints.c.order_ref, complaints.c.last_message_at)
            .where(
                complaints.c.customer_id.in_(customer_ids),
                complaints.c.last_message_at >= since,
                complaints.c.status.not_in(CLOSED_STATUSES),
            )
            .order_by(complaints.c.last_message_at.desc())
            .limit(limit)
        )
    ).all()
    if not rows:
        return []
    refs: dict[str, set[str]] = {}
    email_rows = await conn.execute(
        sa.select(messages.c.complaint_id, messages.c.external_ref).where(
            messages.c.complaint_id.in_([row.id for row in rows]),
            messages.c.channel == "email",
            messages.c.external_ref.is_not(None),
        )
    )
    for complaint_id, ref in email_rows:
        refs.setdefault(complaint_id, set()).add(ref)
    return [
        OpenComplaint(row.id, row.text, row.order_ref, row.last_message_at, frozenset(refs.get(row.id, ())))
        for row in rows
    ]


async def insert_complaint(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """Store a new complaint."""
    await conn.execute(sa.insert(complaints).values(**row))


async def insert_message(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """Store an accepted message with the answer it got."""
    await conn.execute(sa.insert(messages).values(**row))


async def add_follow_up(conn: AsyncConnection, complaint_id: str, at: datetime) -> dict[str, Any]:
    """Count one more follow-up on a complaint; its row after the change."""
    await conn.execute(
        sa.update(complaints)
        .where(complaints.c.id == complaint_id)
        .values(
            follow_up_count=complaints.c.follow_up_count + 1,
            last_message_at=sa.func.greatest(complaints.c.last_message_at, at)
            if conn.dialect.name == "postgresql"
            else sa.func.max(complaints.c.last_message_at, at),
        )
    )
    return await complaint(conn, complaint_id) or {}


async def add_timeline(
    conn: AsyncConnection, complaint_id: str, at: datetime, event_type: str, event_id: str, status: str | None,
    detail: dict[str, Any],
) -> bool:
    """Add an entry to a complaint's timeline; False when that event is already on it."""
    return await insert_ignore(
        conn,
        timeline,
        {"complaint_id": complaint_id, "at": at, "event_type": event_type, "event_id": event_id, "status": status,
         "detail": detail},
    )


async def complaint(conn: AsyncConnection, complaint_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    """One complaint row."""
    query = sa.select(complaints).where(complaints.c.id == complaint_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None


async def set_status(conn: AsyncConnection, complaint_id: str, status: str, at: datetime) -> None:
    """Move a complaint to ``status`` as of ``at``."""
    await conn.execute(sa.update(complaints).where(complaints.c.id == complaint_id).values(status=status, status_at=at))


async def set_case(conn: AsyncConnection, complaint_id: str, case_id: str) -> None:
    """Remember the routing case of a complaint."""
    unset = sa.and_(complaints.c.id == complaint_id, complaints.c.case_id.is_(None))
    await conn.execute(sa.update(complaints).where(unset).values(case_id=case_id))


async def timeline_of(conn: AsyncConnection, complaint_id: str) -> list[dict[str, Any]]:
    """A complaint's timeline, oldest first."""
    rows = await conn.execute(
        sa.select(timeline.c.at, timeline.c.event_type, timeline.c.event_id, timeline.c.status, timeline.c.detail)
        .where(timeline.c.complaint_id == complaint_id)
        .order_by(timeline.c.at, timeline.c.id)
    )
    return [dict(row) for row in rows.mappings()]


async def messages_of(conn: AsyncConnection, complaint_id: str) -> list[dict[str, Any]]:
    """A complaint's messages (the first and every follow-up), oldest first."""
    rows = await conn.execute(
        sa.select(
            messages.c.id, messages.c.kind, messages.c.channel, messages.c.external_ref, messages.c.text,
            messages.c.order_ref, messages.c.received_at,
        )
        .where(messages.c.complaint_id == complaint_id)
        .order_by(messages.c.received_at, messages.c.id)
    )
    return [dict(row) for row in rows.mappings()]


async def complaints_page(
    conn: AsyncConnection, customer_ids: list[str], after: tuple[datetime, str] | None, limit: int
) -> list[dict[str, Any]]:
    """A page of a customer's complaints, newest first, after the (received_at, id) of the previous page."""
    query = sa.select(complaints).where(complaints.c.customer_id.in_(customer_ids))
    if after is not None:
        at, complaint_id = after
        same_time_before = sa.and_(complaints.c.received_at == at, complaints.c.id < complaint_id)
        query = query.where(sa.or_(complaints.c.received_at < at, same_time_before))
    query = query.order_by(complaints.c.received_at.desc(), complaints.c.id.desc()).limit(limit)
    return [dict(row) for row in (await conn.execute(query)).mappings()]
