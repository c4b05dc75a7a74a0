"""Intake's contact directory: which customer an e-mail, phone number or social handle belongs to.

A message names its customer by id, or only by contacts. Unknown contacts create a provisional
customer; a later message that carries a customer id, or two contacts known under different
provisional customers, proves they belong together and links them: the provisional customer is
merged into the other (``merged_into``), its contacts move, and its complaints stay findable under
the surviving id. A contact already owned by a real (non-provisional) customer is never moved.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.channels.base import ContactHints
from services.intake.models import contacts, customers
from shared.db import UtcDateTime, defer_insert

PROVISIONAL_PREFIX = "prov-"
ContactKey = tuple[str, str]


class ConcurrentChange(Exception):
    """Another request changed the same rows at the same moment; run the whole transaction again."""


@dataclass
class Resolution:
    """The customer a message belongs to, and what resolving it changed in the directory."""

    customer_id: str
    provisional: bool
    created: bool = False
    linked: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Customer:
    provisional: bool
    merged_into: str | None


def contact_keys(hints: ContactHints) -> list[ContactKey]:
    """The contacts of a message in order of trust (e-mail, phone, social handle)."""
    pairs = (("email", hints.email), ("phone", hints.phone), ("social", hints.social_handle))
    return [(kind, value) for kind, value in pairs if value]


# The directory rows one message needs, in one round trip: the owner of each of its contacts (up to one per
# kind) and the customer it names, each with its customer row and the customer it was merged into (merges are
# kept flat, so one hop is enough). Built once: a statement of stable shape is compiled once and then reused.
_MAX_KEYS = 3
_owner_row = customers.alias("owner_row")
_survivor_row = customers.alias("survivor_row")
DIRECTORY_ROWS = sa.union_all(
    sa.select(
        contacts.c.kind, contacts.c.value, contacts.c.customer_id, _owner_row.c.provisional,
        _owner_row.c.merged_into, _survivor_row.c.provisional.label("survivor_provisional"),
        _survivor_row.c.merged_into.label("survivor_merged_into"),
    )
    .select_from(
        contacts.outerjoin(_owner_row, _owner_row.c.id == contacts.c.customer_id)
        .outerjoin(_survivor_row, _survivor_row.c.id == _owner_row.c.merged_into)
    )
    .where(sa.or_(*(
        sa.and_(contacts.c.kind == sa.bindparam(f"kind{i}", type_=sa.String), contacts.c.value
                == sa.bindparam(f"value{i}", type_=sa.String))
        for i in range(_MAX_KEYS)
    ))),
    sa.select(
        sa.null().label("kind"), sa.null().label("value"), _owner_row.c.id, _owner_row.c.provisional,
        _owner_row.c.merged_into, _survivor_row.c.provisional, _survivor_row.c.merged_into,
    )
    .select_from(_owner_row.outerjoin(_survivor_row, _survivor_row.c.id == _owner_row.c.merged_into))
    .where(_owner_row.c.id == sa.bindparam("customer_id", type_=sa.String)),
)


@dataclass
class Lookup:
    """The directory rows of one message: who owns each of its contacts, and the customers involved."""

    owners: dict[ContactKey, str] = field(default_factory=dict)
    known: dict[str, _Customer] = field(default_factory=dict)


def lookup_params(hints: ContactHints) -> dict[str, str | None]:
    """The bind parameters of ``DIRECTORY_ROWS`` for a message's contacts (unused slots match nothing)."""
    keys = contact_keys(hints)
    params: dict[str, str | None] = {"customer_id": hints.customer_id}
    for i in range(_MAX_KEYS):
        kind, value = keys[i] if i < len(keys) else (None, None)
        params[f"kind{i}"], params[f"value{i}"] = kind, value
    return params


def read_lookup(rows: Iterable[Mapping[str, Any]]) -> Lookup:
    """A ``Lookup`` from rows (by column name) with the columns of ``DIRECTORY_ROWS``; rows whose columns are
    all NULL add nothing."""
    found = Lookup()
    for row in rows:
        if row["kind"] is not None:
            found.owners[(row["kind"], row["value"])] = row["customer_id"]
        if row["provisional"] is not None:
            found.known[row["customer_id"]] = _Customer(row["provisional"], row["merged_into"])
        if row["merged_into"] and row["survivor_provisional"] is not None:
            found.known[row["merged_into"]] = _Customer(row["survivor_provisional"], row["survivor_merged_into"])
    return found


async def lookup(conn: AsyncConnection, hints: ContactHints) -> Lookup:
    """The directory rows of a message's contacts and of the customer it names."""
    if not contact_keys(hints) and not hints.customer_id:
        return Lookup()
    return read_lookup((await conn.execute(DIRECTORY_ROWS, lookup_params(hints))).mappings())


# The transaction in which a merge moved contacts: directory rows read earlier in it are out of date.
_MERGED_IN = "intake_directory_merged_in"


def merged_in_this_transaction(conn: AsyncConnection) -> bool:
    """Whether a merge changed the directory in ``conn``'s transaction (rows read before it are stale)."""
    merged_in = conn.info.get(_MERGED_IN)
    return merged_in is not None and conn.sync_connection is not None and (
        merged_in is conn.sync_connection.get_transaction()
    )


class _Directory:
    """One resolution's view of the rows it read, so decisions follow merges already made."""

    def __init__(self, conn: AsyncConnection, now: datetime, known: dict[str, _Customer]) -> None:
        self.conn = conn
        self.now = now
        self.known = known

    def canonical(self, customer_id: str) -> str:
        found = self.known.get(customer_id)
        return found.merged_into if found and found.merged_into else customer_id

    def provisional(self, customer_id: str) -> bool:
        found = self.known.get(customer_id)
        return found.provisional if found else customer_id.startswith(PROVISIONAL_PREFIX)

    async def create(self, customer_id: str, provisional: bool) -> None:
        """Add a customer nobody had (written at commit: another request adding it too fails the commit)."""
        await defer_insert(self.conn, customers, [
            {"id": customer_id, "provisional": provisional, "merged_into": None, "created_at": self.now,
             "updated_at": self.now},
        ])
        self.known[customer_id] = _Customer(provisional, None)

    async def merge(self, source: str, target: str) -> None:
        """Fold a provisional customer into ``target``: its contacts move, it and its merged ones point there."""
        self.conn.info[_MERGED_IN] = self.conn.sync_connection.get_transaction() if self.conn.sync_connection else None
        await self.conn.execute(_MOVE_CONTACTS, {"source": source, "target": target})
        await self.conn.execute(_MERGE_CUSTOMERS, {"source": source, "target": target, "now": self.now})
        self.known[source] = _Customer(True, target)


_MOVE_CONTACTS = (
    sa.update(contacts)
    .where(contacts.c.customer_id == sa.bindparam("source", type_=sa.String))
    .values(customer_id=sa.bindparam("target", type_=sa.String))
)
_MERGE_CUSTOMERS = (
    sa.update(customers)
    .where(sa.or_(customers.c.id == sa.bindparam("source", type_=sa.String),
                  customers.c.merged_into == sa.bindparam("source", type_=sa.String)))
    .values(merged_into=sa.bindparam("target", type_=sa.String), updated_at=sa.bindparam("now", type_=UtcDateTime))
)


async def resolve_customer(
    conn: AsyncConnection, hints: ContactHints, now: datetime, found: Lookup | None = None
) -> Resolution:
    """The customer of a message, creating a provisional one and linking contacts as the message proves.

    New customers and new contacts are written at commit (``defer_insert``): when another request adds the
    same one meanwhile, the commit fails with an IntegrityError and the message is accepted again.
    ``found``: the message's directory rows when they were read already (see ``store.arrive``).
    """
    keys = contact_keys(hints)
    found = found if found is not None else await lookup(conn, hints)
    owners = found.owners
    directory = _Directory(conn, now, found.known)
    created = False
    if hints.customer_id:
        target = directory.canonical(hints.customer_id)
        if hints.customer_id not in directory.known:
            await directory.create(hints.customer_id, provisional=False)
            created = True
    else:
        found = list(dict.fromkeys(directory.canonical(owners[key]) for key in keys if key in owners))
        real = [customer_id for customer_id in found if not directory.provisional(customer_id)]
        if found:
            target = (real or found)[0]
        else:
            target = f"{PROVISIONAL_PREFIX}{uuid.uuid4().hex}"
            await directory.create(target, provisional=True)
            created = True
    resolution = Resolution(target, directory.provisional(target), created=created)
    for key in keys:
        await _link(directory, key, owners.get(key), target, resolution)
    return resolution


async def _link(
    directory: _Directory, key: ContactKey, owner: str | None, target: str, resolution: Resolution
) -> None:
    kind, value = key
    if owner is None:
        row = {"kind": kind, "value": value, "customer_id": target, "created_at": directory.now}
        await defer_insert(directory.conn, contacts, [row])
        resolution.linked.append(kind)
        return
    survivor = directory.canonical(owner)
    if survivor == target:
        return
    if directory.provisional(survivor):
        await directory.merge(survivor, target)
        resolution.merged.append(survivor)
        resolution.linked.append(kind)
        return
    # Two real customers share this contact's claim: keep it where it is and say so.
    resolution.conflicts.append(f"{kind} belongs to customer {survivor}")


async def customer_ids(conn: AsyncConnection, customer_id: str) -> list[str]:
    """A customer's id and the ids of the provisional customers merged into it."""
    rows = await conn.execute(sa.select(customers.c.id).where(customers.c.merged_into == customer_id))
    return [customer_id, *(row.id for row in rows)]


async def canonical_id(conn: AsyncConnection, customer_id: str) -> str:
    """The surviving id of a customer (itself unless it was merged)."""
    merged_into = await conn.scalar(sa.select(customers.c.merged_into).where(customers.c.id == customer_id))
    return merged_into or customer_id
