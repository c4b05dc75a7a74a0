"""Points ledger I/O: customer rows, points lots and append-only entries.

Every change first locks the customer's row (an UPDATE, which takes the row lock on PostgreSQL and
the write lock on SQLite before anything is read), so concurrent redemptions of one customer run
one after the other and each sees the balance the previous one left. The balance and the lots are
then changed with guarded UPDATEs, and CHECK constraints refuse a negative balance even if a bug
slipped past the rules: a balance can never go negative.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.loyalty.models import customers, ledger, points_lots
from services.loyalty.points import (
    InsufficientPointsError,
    Lot,
    Take,
    consume_fifo,
    expired_takes,
    lot_expiry,
    reversal_takes,
)
from services.loyalty.policy import LoyaltyPolicy
from services.loyalty.tiers import tier_for_year
from shared.db import Database, any_of, defer_insert, insert_ignore, unnest_insert, unnest_params
from shared.events import EventData
from shared.events.loyalty import LedgerKind, PointsChanged

Emit = Callable[[EventData, str | None], Awaitable[object]]


class UnknownCustomerError(LookupError):
    """Loyalty has never heard of this customer."""


class LedgerConflictError(RuntimeError):
    """A guarded update found the row changed: only possible if the row lock was bypassed."""


@dataclass
class Tx:
    """One unit of work: the open transaction, how to emit events in it, the policy and the time."""

    conn: AsyncConnection
    emit: Emit
    policy: LoyaltyPolicy
    db: Database
    now: datetime
    correlation_id: str


def _new_customer(customer_id: str, now: datetime, settled: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The row of a customer loyalty has not heard of before: potential tier, zero balance.

    With ``settled`` (`settled_without_purchases`), the row is already what the sweep would make of it.
    """
    row = {
        "customer_id": customer_id,
        "balance": 0,
        "tier": "potential",
        "tier_reasons": [],
        "created_at": now,
        "updated_at": now,
    }
    if settled is not None:
        row.update(settled)
    return row


def settled_without_purchases(policy: LoyaltyPolicy, now: datetime) -> dict[str, Any]:
    """The tier columns of a customer with no purchases, refreshed for this year: the tier an empty
    history gives, and benefits checked today (benefits start with the first purchase).

    The sweep writes them for such customers; a customer first heard of through a grant is created
    with them, so that an incident's million new customers need no sweep pass after it.
    """
    today = policy.local_date(now)
    empty = tier_for_year({}, today.year, policy.tiers, policy.currency)
    return {"tier": empty.tier.value, "tier_year": today.year, "tier_reasons": list(empty.reasons),
            "benefits_checked_on": today}


async def ensure_customer(tx: Tx, customer_id: str) -> bool:
    """Create the customer's row if it is new (potential tier, zero balance); True when created."""
    return await insert_ignore(tx.conn, customers, _new_customer(customer_id, tx.now))


def _create_or_touch(conn: AsyncConnection) -> Any:
    """INSERT of a new customer that, for a known one, sets `updated_at` instead.

    Either way the row is locked for the rest of the transaction (the upsert takes the row lock
    exactly as `lock_customer`'s UPDATE does), so creating and locking cost one statement.
    """
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    return _upsert(insert(customers), adding=False)


def _upsert(statement: Any, *, adding: bool) -> Any:
    """The customers insert as an upsert: a known customer's `updated_at` is set (and, ``adding``, the
    row's balance added to its own)."""
    changes = {"updated_at": statement.excluded.updated_at}
    if adding:
        changes["balance"] = customers.c.balance + statement.excluded.balance
    return statement.on_conflict_do_update(index_elements=[customers.c.customer_id], set_=changes)


async def lock_or_create_customer(tx: Tx, customer_id: str, *, settled: bool = False) -> Mapping[str, Any]:
    """`ensure_customer` then `lock_customer` in one statement: the locked row, created if new
    (``settled``: created as the sweep would leave a customer without purchases)."""
    new_row = _new_customer(customer_id, tx.now, settled_without_purchases(tx.policy, tx.now) if settled else None)
    result = await tx.conn.execute(_create_or_touch(tx.conn).returning(*customers.c), new_row)
    return result.mappings().one()


async def lock_or_create_customers(
    conn: AsyncConnection, customer_ids: Sequence[str], now: datetime
) -> dict[str, Mapping[str, Any]]:
    """`lock_or_create_customer` of many customers in one upsert: their locked rows by id.

    The ids are locked in sorted order, so two batches that share customers lock them in the same order.
    """
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    result = await _create_or_touch_many(conn, [_new_customer(cid, now) for cid in ids], tuple(customers.c))
    return {row["customer_id"]: row for row in result.mappings()}


async def _create_or_touch_many(
    conn: AsyncConnection, rows: list[dict[str, Any]], returning: tuple[sa.Column[Any], ...], *, adding: bool = False
) -> sa.CursorResult[Any]:
    """`_create_or_touch` of many customers' rows in one statement, in the given order (``adding``: see `_upsert`).

    On PostgreSQL the rows go as column arrays, so the statement is the same for any number of
    customers (prepared and planned once); a multi-row VALUES would be a new one per count.
    """
    if conn.dialect.name != "postgresql":
        return await conn.execute(_upsert(sqlite_insert(customers), adding=adding).returning(*returning), rows)
    keys = tuple(rows[0])
    return await conn.execute(_upsert_from_arrays(keys, returning, adding), unnest_params(customers, keys, rows))


@functools.cache
def _upsert_from_arrays(keys: tuple[str, ...], returning: tuple[sa.Column[Any], ...], adding: bool) -> Any:
    return _upsert(unnest_insert(customers, keys), adding=adding).returning(*returning)


async def lock_customer(tx: Tx, customer_id: str) -> Mapping[str, Any]:
    """Lock the customer's row for the rest of the transaction and return it."""
    result = await tx.conn.execute(
        sa.update(customers)
        .where(customers.c.customer_id == customer_id)
        .values(updated_at=tx.now)
        .returning(*customers.c)
    )
    row = result.mappings().first()
    if row is None:
        raise UnknownCustomerError(customer_id)
    return row


async def lots_of(conn: AsyncConnection, customer_id: str) -> list[Lot]:
    """The customer's lots that still hold points."""
    rows = await conn.execute(
        sa.select(
            points_lots.c.lot_id, points_lots.c.earned_at, points_lots.c.expires_at, points_lots.c.remaining
        ).where(points_lots.c.customer_id == customer_id, points_lots.c.remaining > 0)
    )
    return [Lot(r.lot_id, r.earned_at, r.expires_at, r.remaining) for r in rows]


async def source_seen(conn: AsyncConnection, source_key: str) -> bool:
    """True when an entry with this source key exists (the effect already happened)."""
    found = await conn.scalar(sa.select(ledger.c.entry_id).where(ledger.c.source_key == source_key))
    return found is not None


async def _take(conn: AsyncConnection, takes: list[Take]) -> None:
    for take in takes:
        result = await conn.execute(
            sa.update(points_lots)
            .where(points_lots.c.lot_id == take.lot_id, points_lots.c.remaining >= take.points)
            .values(remaining=points_lots.c.remaining - take.points)
        )
        if result.rowcount != 1:
            raise LedgerConflictError(f"lot {take.lot_id} no longer holds {take.points} points")


async def _append(
    tx: Tx,
    customer_id: str,
    kind: LedgerKind,
    points: int,
    reason: str,
    *,
    entry_id: str | None = None,
    takes: list[Take] | None = None,
    **refs: Any,
) -> dict[str, Any]:
    """Move the balance by `points` (guarded), append the entry and emit `loyalty.points_changed.v1`."""
    balance = await tx.conn.scalar(
        sa.update(customers)
        .where(customers.c.customer_id == customer_id, customers.c.balance + points >= 0)
        .values(balance=customers.c.balance + points)
        .returning(customers.c.balance)
    )
    if balance is None:
        raise InsufficientPointsError(-points, await _balance(tx.conn, customer_id))
    entry = {
        "entry_id": entry_id or str(uuid.uuid4()),
        "customer_id": customer_id,
        "kind": kind,
        "points": points,
        "balance_after": int(balance),
        "reason": reason[:300],
        "takes": [{"lot_id": t.lot_id, "points": t.points} for t in takes] if takes else None,
        "created_at": tx.now,
        **refs,
    }
    await tx.conn.execute(sa.insert(ledger).values(**entry))
    await tx.emit(_points_changed(entry), customer_id)
    return entry


def _points_changed(entry: Mapping[str, Any]) -> PointsChanged:
    """The `loyalty.points_changed.v1` of a ledger entry."""
    return PointsChanged(
        customer_id=entry["customer_id"],
        entry_id=entry["entry_id"],
        kind=entry["kind"],
        points=entry["points"],
        balance=int(entry["balance_after"]),
        reason=entry["reason"],
        compensation_id=entry.get("compensation_id"),
        case_id=entry.get("case_id"),
        order_id=entry.get("order_id"),
        value_minor=entry.get("value_minor"),
        currency=entry.get("currency"),
    )


async def _balance(conn: AsyncConnection, customer_id: str) -> int:
    return int(await conn.scalar(sa.select(customers.c.balance).where(customers.c.customer_id == customer_id)) or 0)


async def credit(
    tx: Tx,
    customer_id: str,
    points: int,
    reason: str,
    *,
    source_key: str | None,
    earned_at: datetime | None = None,
    kind: LedgerKind = "earn",
    **refs: Any,
) -> dict[str, Any] | None:
    """Add points as a new lot (earn, or a positive adjustment); None when `source_key` was already applied.

    A customer loyalty has not heard of is created without purchases, settled for this year.
    """
    if points <= 0:
        raise ValueError("a credit must be positive")
    await lock_or_create_customer(tx, customer_id, settled=True)
    if source_key and await source_seen(tx.conn, source_key):
        return None
    entry_id = str(uuid.uuid4())
    earned = earned_at or tx.now
    await tx.conn.execute(
        sa.insert(points_lots).values(
            lot_id=entry_id,
            customer_id=customer_id,
            points=points,
            remaining=points,
            earned_at=earned,
            expires_at=lot_expiry(earned, tx.policy.points),
            source_key=source_key,
        )
    )
    return await _append(tx, customer_id, kind, points, reason, entry_id=entry_id, source_key=source_key, **refs)


@dataclass(frozen=True)
class Credit:
    """One earn of a batch: what `credit` takes, and the unit of work whose event it emits."""

    tx: Tx
    customer_id: str
    points: int
    reason: str
    source_key: str | None
    refs: Mapping[str, Any] = field(default_factory=dict)


# Every reference an entry may carry: multi-row inserts need the same columns in every row.
_REF_COLUMNS = ("compensation_id", "case_id", "order_id", "value_minor", "currency")


async def credit_many(credits: Sequence[Credit]) -> list[dict[str, Any] | None]:
    """`credit` (kind earn, earned now) of many credits: two statements for the whole batch, and its rows in the flush.

    The result is that of calling `credit` for each in order: every customer's row is created if
    new and locked, a source key already in the ledger or earlier in the batch is skipped (None in
    its place), each entry's `balance_after` counts the credits before it, and the events go out in
    order. The credits share the first one's transaction and time.

    The source keys are read before the customers are locked, so that creating, locking and adding
    to the balance are one upsert. Should a concurrent batch write one of those keys meanwhile, the
    ledger's unique source key refuses this batch, and the consumer takes its events one by one.
    """
    if not credits:
        return []
    if any(c.points <= 0 for c in credits):
        raise ValueError("a credit must be positive")
    first = credits[0].tx
    conn, now = first.conn, first.now
    applies = _taking_effect(credits, await _sources_seen(conn, [c.source_key for c in credits if c.source_key]))
    moved: dict[str, int] = {}
    for c, applied in zip(credits, applies, strict=True):
        if applied:
            moved[c.customer_id] = moved.get(c.customer_id, 0) + c.points
    after = await _lock_create_and_add(conn, sorted({c.customer_id for c in credits}), moved, now, first.policy)
    balances = {customer_id: balance - moved.get(customer_id, 0) for customer_id, balance in after.items()}
    expires_at = lot_expiry(now, first.policy.points)
    lots: list[dict[str, Any]] = []
    entries: list[dict[str, Any] | None] = []
    for c, applied in zip(credits, applies, strict=True):
        if not applied:
            entries.append(None)
            continue
        entry_id = str(uuid.uuid4())
        balances[c.customer_id] += c.points
        lots.append({"lot_id": entry_id, "customer_id": c.customer_id, "points": c.points, "remaining": c.points,
                     "earned_at": now, "expires_at": expires_at, "source_key": c.source_key})
        entries.append({
            "entry_id": entry_id, "customer_id": c.customer_id, "kind": "earn", "points": c.points,
            "balance_after": balances[c.customer_id], "reason": c.reason[:300], "takes": None, "created_at": now,
            "source_key": c.source_key, **{k: c.refs.get(k) for k in _REF_COLUMNS},
        })
    written = [e for e in entries if e is not None]
    if written:
        # Nothing in this batch reads them back: they go with the transaction's one-statement flush.
        await defer_insert(conn, points_lots, lots)
        await defer_insert(conn, ledger, written)
    for c, entry in zip(credits, entries, strict=True):
        if entry is not None:
            await c.tx.emit(_points_changed(entry), c.customer_id)
    return entries


def _taking_effect(credits: Sequence[Credit], seen: set[str]) -> list[bool]:
    """Which credits take effect: those whose source key is neither in the ledger nor earlier in the batch."""
    taken = set(seen)
    applies = []
    for c in credits:
        applies.append(not (c.source_key and c.source_key in taken))
        if c.source_key:
            taken.add(c.source_key)
    return applies


async def _lock_create_and_add(
    conn: AsyncConnection, customer_ids: list[str], moved: Mapping[str, int], now: datetime, policy: LoyaltyPolicy
) -> dict[str, int]:
    """Create the missing customers (settled, as `credit` does), lock every one and add its `moved` points
    (one upsert); the new balances.

    The ids come sorted, so two batches that share customers lock them in the same order.
    """
    settled = settled_without_purchases(policy, now)  # once for the batch, not per customer
    rows = [{**_new_customer(cid, now, settled), "balance": moved.get(cid, 0)} for cid in customer_ids]
    result = await _create_or_touch_many(conn, rows, (customers.c.customer_id, customers.c.balance), adding=True)
    return {row.customer_id: int(row.balance) for row in result}


async def _sources_seen(conn: AsyncConnection, source_keys: list[str]) -> set[str]:
    """The source keys among `source_keys` that the ledger already holds."""
    if not source_keys:
        return set()
    rows = await conn.scalars(sa.select(ledger.c.source_key).where(any_of(conn, ledger.c.source_key, set(source_keys))))
    return set(rows)


async def expire_due(tx: Tx, customer_id: str) -> dict[str, Any] | None:
    """Expire what is left of the customer's expired lots, oldest first (the row must be locked)."""
    takes = expired_takes(await lots_of(tx.conn, customer_id), tx.now)
    if not takes:
        return None
    await _take(tx.conn, takes)
    total = sum(t.points for t in takes)
    days = tx.policy.points.expire_after_days
    return await _append(tx, customer_id, "expire", -total, f"points older than {days} days expired", takes=takes)


async def debit(
    tx: Tx,
    customer_id: str,
    points: int,
    kind: LedgerKind,
    reason: str,
    *,
    source_key: str | None = None,
    **refs: Any,
) -> dict[str, Any]:
    """Take points oldest first (a redemption or a negative adjustment); InsufficientPointsError if short."""
    if points <= 0:
        raise ValueError("a debit must be positive")
    await lock_customer(tx, customer_id)
    await expire_due(tx, customer_id)
    takes = consume_fifo(await lots_of(tx.conn, customer_id), points, tx.now)
    await _take(tx.conn, takes)
    return await _append(tx, customer_id, kind, -points, reason, takes=takes, source_key=source_key, **refs)


async def reverse(
    tx: Tx,
    customer_id: str,
    points: int,
    reason: str,
    *,
    source_key: str,
    prefer_lot: str | None = None,
    **refs: Any,
) -> dict[str, Any] | None:
    """Take back up to `points` (refund, reversed compensation), never below zero; None if already done.

    Points the customer already spent cannot be taken back: the entry records what was taken and
    its reason says how much could not be.
    """
    await lock_or_create_customer(tx, customer_id)
    if await source_seen(tx.conn, source_key):
        return None
    await expire_due(tx, customer_id)
    takes = reversal_takes(await lots_of(tx.conn, customer_id), points, tx.now, prefer_lot)
    await _take(tx.conn, takes)
    taken = sum(t.points for t in takes)
    if taken < points:
        reason = f"{reason} ({points - taken} points already spent, not taken back)"
    return await _append(tx, customer_id, "reverse", -taken, reason, takes=takes, source_key=source_key, **refs)


async def lot_of_source(conn: AsyncConnection, source_key: str) -> str | None:
    """The lot created by the entry with `source_key` (to reverse from it first)."""
    value = await conn.scalar(sa.select(points_lots.c.lot_id).where(points_lots.c.source_key == source_key))
    return str(value) if value is not None else None
