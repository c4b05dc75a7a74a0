"""Deferred rows and the NOTIFY of a transaction go to PostgreSQL as one statement at commit."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shared.db import Database, UtcDateTime, add_delivery_tables, defer_insert, defer_notify
from tests.support.schemas import fresh_schema

metadata = sa.MetaData()
tables = add_delivery_tables(metadata)
parents = sa.Table(
    "parents", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("detail", sa.JSON, nullable=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
)
children = sa.Table(
    "children", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("parent_id", sa.String(40), sa.ForeignKey("parents.id"), nullable=False),
    sa.Column("note", sa.Text, nullable=True),
)
defaulted = sa.Table(
    "defaulted", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False, default="plain"),
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A Database on a fresh schema with a parent table, a child table and a table with a Python default."""
    async with fresh_schema(database_url, metadata, tables, prefix="flush") as database:
        yield database


class Statements:
    """The statements a Database's engine sends, while listening."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.seen: list[str] = []

    def _note(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.seen.append(statement)

    def __enter__(self) -> "Statements":
        sa.event.listen(self.db.engine.sync_engine, "before_cursor_execute", self._note)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(self.db.engine.sync_engine, "before_cursor_execute", self._note)


async def rows_of(db: Database, table: sa.Table) -> list[tuple[Any, ...]]:
    """Every row of a table, by its first column."""
    async with db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(sa.select(table).order_by(*table.primary_key))).all()]


def family(prefix: str, children_each: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two parents (one with JSON detail and one without) and their children."""
    at = datetime(2026, 12, 7, 4, 0, 0, 123456, tzinfo=UTC)
    parent_rows = [
        {"id": f"{prefix}-a", "detail": {"tier": "gold", "n": [1, 2]}, "active": True, "at": at},
        {"id": f"{prefix}-b", "detail": None, "active": False, "at": at},
    ]
    child_rows = [{"parent_id": p["id"], "note": f"note {n}" if n else None}
                  for p in parent_rows for n in range(children_each)]
    return parent_rows, child_rows


async def test_rows_of_several_tables_and_the_notify_are_one_statement(db: Database) -> None:
    texts = []
    for prefix, each in (("x", 1), ("y", 4)):
        parent_rows, child_rows = family(prefix, each)
        with Statements(db) as statements:
            async with db.transaction() as conn:
                await defer_insert(conn, parents, parent_rows)
                await defer_insert(conn, children, child_rows)  # refers to parents written in the same statement
                await defer_notify(conn, "flush_test")
        texts.append(statements.seen)
    assert len(texts[0]) == 1 and texts[0] == texts[1]  # one statement, the same text for 3 rows and for 10
    stored = await rows_of(db, parents)
    assert [(r[0], r[1], r[2]) for r in stored] == [
        ("x-a", {"tier": "gold", "n": [1, 2]}, True), ("x-b", None, False),
        ("y-a", {"tier": "gold", "n": [1, 2]}, True), ("y-b", None, False)]
    assert {r[3] for r in stored} == {datetime(2026, 12, 7, 4, 0, 0, 123456, tzinfo=UTC)}
    assert [(r[1], r[2]) for r in await rows_of(db, children)] == [
        ("x-a", None), ("x-b", None), ("y-a", None), ("y-a", "note 1"), ("y-a", "note 2"), ("y-a", "note 3"),
        ("y-b", None), ("y-b", "note 1"), ("y-b", "note 2"), ("y-b", "note 3")]


async def test_a_conflict_at_commit_is_an_integrity_error_and_nothing_is_kept(db: Database) -> None:
    parent_rows, _ = family("dup", 0)
    async with db.transaction() as conn:
        await defer_insert(conn, parents, parent_rows[:1])
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await defer_insert(conn, parents, parent_rows[1:])
            await defer_insert(conn, parents, parent_rows[:1])  # the same key again
    assert [r[0] for r in await rows_of(db, parents)] == ["dup-a"]


async def test_a_child_without_its_parent_fails_at_commit(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await defer_insert(conn, children, [{"parent_id": "nobody", "note": None}])
    assert await rows_of(db, children) == []


async def test_rows_leaving_a_python_default_to_apply_get_it(db: Database) -> None:
    async with db.transaction() as conn:
        await defer_insert(conn, defaulted, [{"id": "d1"}])
        await defer_insert(conn, defaulted, [{"id": "d2", "kind": "special"}])
    assert await rows_of(db, defaulted) == [("d1", "plain"), ("d2", "special")]


async def test_a_transaction_without_deferred_work_sends_nothing_more(db: Database) -> None:
    with Statements(db) as statements:
        async with db.transaction() as conn:
            await conn.execute(sa.text("SELECT 1"))
    assert statements.seen == ["SELECT 1"]
