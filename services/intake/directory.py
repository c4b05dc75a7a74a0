"""Intake's contact directory: which customer an e-mail, phone number or social handle belongs to.

A message names its customer by id, or only by contacts. Unknown contacts create a provisional
customer; a later message that carries a customer id, or two contacts known under different
provisional customers, proves they belong together and links them: the provisional customer is
merged into the other (``merged_into``), its contacts move, and its complaints stay findable under
the surviving id. A contact already owned by a real (non-provisional) customer is never moved.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.channels.base import ContactHints
from services.intake.models import contacts, customers
from shared.db import insert_ignore

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


async def _owners(conn: AsyncConnection, keys: list[ContactKey]) -> dict[ContactKey, str]:
    if not keys:
        return {}
    condition = sa.or_(*(sa.and_(contacts.c.kind == kind, contacts.c.value == value) for kind, value in keys))
    rows = await conn.execute(sa.select(contacts.c.kind, contacts.c.value, contacts.c.customer_id).where(condition))
    return {(row.kind, row.value): row.customer_id for row in rows}


async def _customers(conn: AsyncConnection, ids: set[str]) -> dict[str, _Customer]:
    if not ids:
        return {}
    rows = await conn.execute(
        sa.select(customers.c.id, customers.c.provisional, customers.c.merged_into).where(customers.c.id.in_(ids))
    )
    return {row.id: _Customer(row.provisional, row.merged_into) for row in rows}


class _Directory:
    """One resolution's view of the rows it read, so decisions follow merges already made."""

    def __init__(self, conn: AsyncConnection, now: datetime) -> None:
        self.conn = conn
        self.now = now
        self.known: dict[str, _Customer] = {}

    async def load(self, ids: set[str]) -> None:
        self.known.update(await _customers(self.conn, ids - set(self.known)))
        # Merges are kept flat (merged_into always names a surviving customer), one hop is enough.
        survivors = {c.merged_into for c in self.known.values() if c.merged_into}
        self.known.update(await _customers(self.conn, survivors - set(self.known)))

    def canonical(self, customer_id: str) -> str:
        found = self.known.get(customer_id)
        return found.merged_into if found and found.merged_into else customer_id

    def provisional(self, customer_id: str) -> bool:
        found = self.known.get(customer_id)
        return found.provisional if found else customer_id.startswith(PROVISIONAL_PREFIX)

    async def create(self, customer_id: str, provisional: bool) -> bool:
        inserted = await insert_ignore(
            self.conn,
            customers,
            {"id": customer_id, "provisional": provisional, "merged_into": None, "created_at": self.now,
             "updated_at": self.now},
        )
        if inserted:
            self.known[customer_id] = _Customer(provisional, None)
        else:
            await self.load({customer_id})
        return inserted

    async def merge(self, source: str, target: str) -> None:
        """Fold a provisional customer into ``target``: its contacts move, it and its merged ones point there."""
        await self.conn.execute(sa.update(contacts).where(contacts.c.customer_id == source).values(customer_id=target))
        await self.conn.execute(
            sa.update(customers)
            .where(sa.or_(customers.c.id == source, customers.c.merged_into == source))
            .values(merged_into=target, updated_at=self.now)
        )
        self.known[source] = _Customer(True, target)


async def resolve_customer(conn: AsyncConnection, hints: ContactHints, now: datetime) -> Resolution:
    """The customer of a message, creating a provisional one and linking contacts as the message proves."""
    keys = contact_keys(hints)
    owners = await _owners(conn, keys)
    directory = _Directory(conn, now)
    await directory.load(set(owners.values()) | ({hints.customer_id} if hints.customer_id else set()))
    created = False
    if hints.customer_id:
        target = directory.canonical(hints.customer_id)
        if hints.customer_id not in directory.known:
            created = await directory.create(hints.customer_id, provisional=False)
    else:
        found = list(dict.fromkeys(directory.canonical(owners[key]) for key in keys if key in owners))
        real = [customer_id for customer_id in found if not directory.provisional(customer_id)]
        if found:
            target = (real or found)[0]
        else:
            target = f"{PROVISIONAL_PREFIX}{uuid.uuid4().hex}"
            created = await directory.create(target, provisional=True)
    resolution = Resolution(target, directory.provisional(target), created=created)
    for key in keys:
        await _link(directory, key, owners.get(key), target, resolution)
    return resolution


async def _link(
    directory: _Directory, key: ContactKey, owner: str | None, target: str, resolution: Resolution
) -> None:
    kind, value = key
    if owner is None:
        inserted = await insert_ignore(
            directory.conn, contacts, {"kind": kind, "value": value, "customer_id": target, "created_at": directory.now}
        )
        if not inserted:
            raise ConcurrentChange(f"contact {kind} was added by another request")
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
