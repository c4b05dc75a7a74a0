"""The arrival of signed messages read for a whole group in one round trip, and what makes those reads stale."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from services.intake import directory, store
from services.intake.channels.base import ContactHints
from services.intake.models import contacts, customers, delivery, messages
from services.intake.settings import Settings
from shared.db import Database, make_engine

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(migrated_env: dict[str, str]) -> AsyncIterator[Database]:
    """Intake's migrated PostgreSQL schema."""
    settings = Settings(database_url=migrated_env["DATABASE_URL"], kafka_bootstrap_servers="127.0.0.1:9")
    database = Database(make_engine(settings), delivery, settings.db_schema)
    yield database
    await database.engine.dispose()


def _tag() -> str:
    return uuid.uuid4().hex[:10]


async def _customer(conn: sa.ext.asyncio.AsyncConnection, customer_id: str, provisional: bool,
                    *owned: tuple[str, str]) -> None:
    await conn.execute(sa.insert(customers).values(id=customer_id, provisional=provisional, merged_into=None,
                                                   created_at=NOW, updated_at=NOW))
    for kind, value in owned:
        await conn.execute(sa.insert(contacts).values(kind=kind, value=value, customer_id=customer_id, created_at=NOW))


def _request(digest: str, ref: str | None = None, **hints: str) -> store.ArrivalRequest:
    return store.ArrivalRequest(digest, "key-1", NOW, "web", ref, ContactHints(**hints))


async def test_each_message_of_a_group_gets_its_own_arrival_in_order(db: Database) -> None:
    tag = _tag()
    email, phone, customer = f"{tag}@example.com", f"+86{tag[:8]}", f"cust-{tag}"
    async with db.transaction() as conn:
        await _customer(conn, customer, False, ("email", email), ("phone", phone))
        await conn.execute(sa.insert(messages).values(
            id=f"m-{tag}", complaint_id=f"c-{tag}", kind="complaint", customer_id=customer, channel="web",
            external_ref=f"ref-{tag}", text="t", received_at=NOW, answer={"complaint_id": f"c-{tag}"}))
    requests = [
        _request(f"d1-{tag}", email=email, phone=phone),  # two directory rows
        _request(f"d1-{tag}", email=f"new-{tag}@example.com"),  # the same signature again: a replay
        _request(f"d2-{tag}", f"ref-{tag}"),  # re-sent: its first answer, no contact rows
        _request(f"d3-{tag}", customer_id=customer),
    ]
    async with db.transaction() as conn:
        arrivals = await store.arrive_many(conn, requests)
    assert [a.claimed for a in arrivals] == [True, False, True, True]
    assert arrivals[0].directory.owners == {("email", email): customer, ("phone", phone): customer}
    assert arrivals[1].directory.owners == {} and arrivals[1].earlier is None
    assert arrivals[2].earlier == {"id": f"m-{tag}", "answer": {"complaint_id": f"c-{tag}"}}
    assert arrivals[3].directory.known[customer].provisional is False
    async with db.engine.connect() as conn:  # the claims were committed with the transaction
        assert await store.claim_signature(conn, f"d2-{tag}", "key-1", NOW) is False


async def test_a_merge_marks_the_directory_rows_read_earlier_in_its_transaction_stale(db: Database) -> None:
    tag = _tag()
    email, phone = f"{tag}@example.com", f"+86{tag[:8]}"
    provisional, real = f"{directory.PROVISIONAL_PREFIX}{tag}", f"cust-{tag}"
    async with db.transaction() as conn:
        await _customer(conn, provisional, True, ("email", email), ("phone", phone))
        await _customer(conn, real, False)
    async with db.transaction() as conn:
        read_first = (await store.arrive_many(conn, [_request(f"d-{tag}", phone=phone)]))[0].directory
        assert read_first.owners == {("phone", phone): provisional}
        assert not directory.merged_in_this_transaction(conn)
        resolution = await directory.resolve_customer(conn, ContactHints(customer_id=real, email=email), NOW)
        assert resolution.merged == [provisional]
        assert directory.merged_in_this_transaction(conn)
        # What the phone's message resolves to, read again as the acceptance does after a merge: the survivor.
        again = await directory.resolve_customer(conn, ContactHints(phone=phone), NOW)
        assert again.customer_id == real
    async with db.transaction() as conn:
        assert not directory.merged_in_this_transaction(conn)
