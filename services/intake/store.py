"""Intake's reads and writes: messages, complaints, follow-ups, the timeline and used signatures."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.channels.base import ContactHints
from services.intake.directory import DIRECTORY_ROWS, Lookup, lookup_params, read_lookup
from services.intake.models import complaints, customers, messages, timeline, used_signatures
from services.intake.policy import OpenComplaint
from shared.db import UtcDateTime, defer_insert, driver_in_transaction, insert_ignore, insert_rows

CLOSED_STATUSES = ("resolved", "closed")


# The accept path's statements are built once: a statement of stable shape is compiled once per dialect and
# reused, where one built per call pays for its construction and cache key every time.
_INSERT_IGNORE: dict[tuple[str, str], Any] = {}


def _insert_ignore(conn: AsyncConnection, table: sa.Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` into ``table`` for the connection's dialect (built once)."""
    key = (conn.dialect.name, table.name)
    statement = _INSERT_IGNORE.get(key)
    if statement is None:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        statement = _INSERT_IGNORE[key] = insert(table).on_conflict_do_nothing()
    return statement


async def claim_signature(conn: AsyncConnection, digest: str, key_id: str, now: datetime) -> bool:
    """Record a signature as used; False when it was used before (a replay)."""
    values = {"digest": digest, "key_id": key_id, "seen_at": now}
    return bool((await conn.execute(_insert_ignore(conn, used_signatures), values)).rowcount)


async def purge_signatures(conn: AsyncConnection, before: datetime) -> int:
    """Forget signatures older than the replay window (their timestamps are refused anyway)."""
    result = await conn.execute(sa.delete(used_signatures).where(used_signatures.c.seen_at < before))
    return result.rowcount or 0


_MESSAGE_BY_REF = sa.select(messages.c.id, messages.c.answer).where(
    messages.c.channel == sa.bindparam("channel", type_=sa.String),
    messages.c.external_ref == sa.bindparam("external_ref", type_=sa.String),
)


async def message_by_ref(conn: AsyncConnection, channel: str, external_ref: str) -> dict[str, Any] | None:
    """The message a channel already sent under this reference: its id and the answer it got."""
    row = (await conn.execute(_MESSAGE_BY_REF, {"channel": channel, "external_ref": external_ref})).first()
    return {"id": row.id, "answer": row.answer} if row else None


@dataclass(frozen=True)
class Arrival:
    """What one signed message finds as it arrives: whether its signature was new, an earlier message with its
    external reference, and its directory rows."""

    claimed: bool
    earlier: dict[str, Any] | None
    directory: Lookup


@dataclass(frozen=True)
class ArrivalRequest:
    """What ``arrive_many`` needs of one signed message."""

    digest: str
    key_id: str
    now: datetime
    channel: str
    external_ref: str | None
    hints: ContactHints


@lru_cache(maxsize=1)
def _arrival_query() -> sa.Select:
    """Claim the signature, find the message by reference and read the directory rows: one PostgreSQL statement.

    One row per directory row, each carrying the request's slot, the claim and the earlier message (one row of
    NULLs when the directory has none). The claim is a data-modifying CTE: it runs once whether or not a row
    reads it.
    """
    claim = (
        postgresql.insert(used_signatures)
        .values(digest=sa.bindparam("digest", type_=sa.String), key_id=sa.bindparam("key_id", type_=sa.String),
                seen_at=sa.bindparam("seen_at", type_=UtcDateTime))
        .on_conflict_do_nothing()
        .returning(used_signatures.c.digest)
        .cte("claim")
    )
    same_ref = (
        messages.c.channel == sa.bindparam("channel", type_=sa.String),
        messages.c.external_ref == sa.bindparam("external_ref", type_=sa.String),
    )
    head = sa.select(
        sa.bindparam("slot", type_=sa.Integer).label("slot"),
        sa.select(sa.func.count()).select_from(claim).scalar_subquery().label("claimed"),
        sa.select(messages.c.id).where(*same_ref).scalar_subquery().label("earlier_id"),
        sa.select(sa.cast(messages.c.answer, sa.Text)).where(*same_ref).scalar_subquery().label("earlier_answer"),
    ).subquery("head")
    rows = DIRECTORY_ROWS.subquery("directory")
    return sa.select(head, rows).select_from(head.outerjoin(rows, sa.true()))


@lru_cache(maxsize=4)
def _arrival_sql(dialect: sa.Dialect) -> tuple[str, tuple[str, ...]]:
    """The arrival statement as the driver runs it, and the order of its parameters."""
    compiled = _arrival_query().compile(dialect=dialect)
    return str(compiled), tuple(compiled.positiontup or ())


async def arrive_many(conn: AsyncConnection, requests: list[ArrivalRequest]) -> list[Arrival]:
    """``claim_signature``, ``message_by_ref`` and ``directory.lookup`` for each message, in order, in one round
    trip (PostgreSQL only): the driver sends every execution of the statement before it reads an answer.

    Each execution sees what the ones before it changed: the same signature twice claims it once.
    """
    sql, order = _arrival_sql(conn.dialect)
    args = []
    for slot, req in enumerate(requests):
        params = {"slot": slot, "digest": req.digest, "key_id": req.key_id, "seen_at": req.now,
                  "channel": req.channel, "external_ref": req.external_ref, **lookup_params(req.hints)}
        args.append([params[name] for name in order])
    records = await (await driver_in_transaction(conn)).fetchmany(sql, args)
    by_slot: list[list[Mapping[str, Any]]] = [[] for _ in requests]
    for record in records:
        by_slot[record["slot"]].append(record)
    return [_arrival(rows) for rows in by_slot]


def _arrival(rows: list[Mapping[str, Any]]) -> Arrival:
    first = rows[0]
    earlier_id = first["earlier_id"]
    earlier = {"id": earlier_id, "answer": json.loads(first["earlier_answer"])} if earlier_id is not None else None
    return Arrival(bool(first["claimed"]), earlier, read_lookup(rows))


@dataclass(frozen=True)
class History:
    """What intake knows of a customer's recent past when a message arrives."""

    prior_messages: int
    open_complaints: list[OpenComplaint]


def _customer_ids() -> sa.CompoundSelect:
    """A customer's id and the ids of the provisional customers merged into it (bound to ``customer_id``)."""
    customer_id = sa.bindparam("customer_id", type_=sa.String)
    return sa.union_all(sa.select(customer_id), sa.select(customers.c.id).where(customers.c.merged_into == customer_id))


@lru_cache(maxsize=8)
def _history_query(max_candidates: int) -> sa.Select:
    """Messages since ``since`` and the open complaints active since ``open_since``, in one statement.

    One row per candidate (newest first), each carrying the message count; a single row of NULLs with the
    count when there is no candidate.
    """
    prior = (
        sa.select(sa.func.count())
        .where(messages.c.customer_id.in_(_customer_ids()),
               messages.c.received_at >= sa.bindparam("since", type_=UtcDateTime))
        .scalar_subquery()
    )
    candidates = (
        sa.select(complaints.c.id, complaints.c.text, complaints.c.order_ref, complaints.c.last_message_at)
        .where(
            complaints.c.customer_id.in_(_customer_ids()),
            complaints.c.last_message_at >= sa.bindparam("open_since", type_=UtcDateTime),
            *(complaints.c.status != sa.literal(status) for status in CLOSED_STATUSES),
        )
        .order_by(complaints.c.last_message_at.desc())
        .limit(max_candidates)
        .subquery("candidates")
    )
    one = sa.select(sa.literal(1).label("one")).subquery("one")
    return (
        sa.select(prior.label("prior"), candidates)
        .select_from(one.outerjoin(candidates, sa.true()))
        .order_by(candidates.c.last_message_at.desc())
    )


_EMAIL_REFS = sa.select(messages.c.complaint_id, messages.c.external_ref).where(
    messages.c.complaint_id.in_(sa.bindparam("complaint_ids", expanding=True)),
    messages.c.channel == "email",
    messages.c.external_ref.is_not(None),
)


async def history(
    conn: AsyncConnection, customer_id: str, since: datetime, open_since: datetime, max_candidates: int,
    *, email_refs: bool,
) -> History:
    """The customer's messages since ``since`` (every channel, complaints and follow-ups, merged customers too)
    and its complaints still open and active since ``open_since``, newest first.

    With ``email_refs`` the candidates carry the e-mail message ids of their messages (a reply names them).
    """
    params = {"customer_id": customer_id, "since": since, "open_since": open_since}
    rows = (await conn.execute(_history_query(max_candidates), params)).all()
    found = [row for row in rows if row.id is not None]
    refs: dict[str, set[str]] = {}
    if found and email_refs:
        for complaint_id, ref in await conn.execute(_EMAIL_REFS, {"complaint_ids": [row.id for row in found]}):
            refs.setdefault(complaint_id, set()).add(ref)
    candidates = [
        OpenComplaint(row.id, row.text, row.order_ref, row.last_message_at, frozenset(refs.get(row.id, ())))
        for row in found
    ]
    return History(int(rows[0].prior or 0) if rows else 0, candidates)


async def insert_complaint(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """Store a new complaint (written at commit: nothing in the transaction reads it back)."""
    await defer_insert(conn, complaints, [row])


async def insert_message(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """Store an accepted message with the answer it got (written at commit).

    A message sent twice at once fails the commit on (channel, external_ref); the retry answers it as a replay.
    """
    await defer_insert(conn, messages, [row])


async def add_new_timeline(
    conn: AsyncConnection, complaint_id: str, at: datetime, event_type: str, event_id: str, status: str | None,
    detail: dict[str, Any],
) -> None:
    """Add the entry of an event emitted in this transaction (a new event id: written at commit)."""
    await defer_insert(conn, timeline, [
        {"complaint_id": complaint_id, "at": at, "event_type": event_type, "event_id": event_id, "status": status,
         "detail": detail},
    ])


_FOLLOW_UP_RETURNS = (
    complaints.c.customer_id, complaints.c.provisional_customer, complaints.c.category, complaints.c.order_ref,
    complaints.c.status, complaints.c.follow_up_count,
)


@lru_cache(maxsize=4)
def _follow_up_update(dialect: str, returning: bool) -> sa.Update:
    at = sa.bindparam("at", type_=UtcDateTime)
    latest = sa.func.greatest if dialect == "postgresql" else sa.func.max  # SQLite's two-argument max
    statement = (
        sa.update(complaints)
        .where(complaints.c.id == sa.bindparam("complaint_id", type_=sa.String))
        .values(follow_up_count=complaints.c.follow_up_count + 1,
                last_message_at=latest(complaints.c.last_message_at, at))
    )
    return statement.returning(*_FOLLOW_UP_RETURNS) if returning else statement


async def add_follow_up(conn: AsyncConnection, complaint_id: str, at: datetime) -> dict[str, Any]:
    """Count one more follow-up on a complaint; its row after the change (the columns of ``_FOLLOW_UP_RETURNS``)."""
    returning = bool(conn.dialect.update_returning)
    params = {"complaint_id": complaint_id, "at": at}
    result = await conn.execute(_follow_up_update(conn.dialect.name, returning), params)
    if returning:
        row = result.mappings().first()
        return dict(row) if row else {}
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


# A run of downstream events: its complaints locked with one statement, its timeline entries added with one,
# and the complaints it changed written with one (PostgreSQL; SQLite runs the same statement per complaint).
FOLLOWED_COLUMNS = (complaints.c.id, complaints.c.status, complaints.c.status_at, complaints.c.case_id)


@lru_cache(maxsize=2)
def _followed_query(dialect: str) -> sa.Select:
    if dialect != "postgresql":
        return sa.select(*FOLLOWED_COLUMNS).where(complaints.c.id.in_(sa.bindparam("ids", expanding=True)))
    # One array parameter, so the statement is the same whatever the run's length; locked in id order,
    # so two transactions locking overlapping sets of complaints cannot deadlock.
    any_id = complaints.c.id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.String)))
    return sa.select(*FOLLOWED_COLUMNS).where(any_id).order_by(complaints.c.id).with_for_update()


async def complaints_to_follow(conn: AsyncConnection, complaint_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The id, status, status_at and case_id of those of ``complaint_ids`` that exist, locked, by id."""
    if not complaint_ids:
        return {}
    rows = await conn.execute(_followed_query(conn.dialect.name), {"ids": sorted(complaint_ids)})
    return {row["id"]: dict(row) for row in rows.mappings()}


async def add_timeline_entries(conn: AsyncConnection, entries: list[dict[str, Any]]) -> set[str]:
    """Add timeline entries (the columns of ``add_timeline``) in one statement; the event ids that were new.

    An entry whose event is already on a timeline adds nothing, as in ``add_timeline``.
    """
    if not entries:
        return set()
    added = await insert_rows(conn, timeline, entries, skip_conflicts=True, returning=[timeline.c.event_id])
    return {row.event_id for row in added}


@lru_cache(maxsize=2)
def _followed_update(dialect: str) -> sa.Update:
    c = complaints.c
    if dialect != "postgresql":
        return sa.update(complaints).where(c.id == sa.bindparam("b_id")).values(
            status=sa.bindparam("b_status"), status_at=sa.bindparam("b_status_at"), case_id=sa.bindparam("b_case_id")
        )
    new = (
        sa.func.unnest(
            sa.bindparam("ids", type_=ARRAY(sa.String)),
            sa.bindparam("statuses", type_=ARRAY(sa.String)),
            sa.bindparam("status_ats", type_=ARRAY(UtcDateTime)),
            sa.bindparam("case_ids", type_=ARRAY(sa.String)),
        )
        .table_valued(sa.column("id", sa.String), sa.column("status", sa.String),
                      sa.column("status_at", UtcDateTime), sa.column("case_id", sa.String))
        .render_derived(name="fresh")
    )
    return sa.update(complaints).where(c.id == new.c.id).values(
        status=new.c.status, status_at=new.c.status_at, case_id=new.c.case_id
    )


async def update_followed(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Write the status, status_at and case_id of complaints (rows shaped as ``complaints_to_follow`` returns)."""
    if not rows:
        return
    statement = _followed_update(conn.dialect.name)
    if conn.dialect.name != "postgresql":
        params = [{"b_id": r["id"], "b_status": r["status"], "b_status_at": r["status_at"], "b_case_id": r["case_id"]}
                  for r in rows]
        await conn.execute(statement, params)
        return
    await conn.execute(statement, {
        "ids": [r["id"] for r in rows],
        "statuses": [r["status"] for r in rows],
        "status_ats": [r["status_at"] for r in rows],
        "case_ids": [r["case_id"] for r in rows],
    })


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
