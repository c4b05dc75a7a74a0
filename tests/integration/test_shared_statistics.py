"""Services analyze their tables as they grow, so cached plans stop scanning a table made when it was empty."""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from shared.db import Database, add_delivery_tables
from shared.statistics import analyze_grown, keep_statistics, table_growth
from tests.support.schemas import fresh_schema

metadata = sa.MetaData()
tables = add_delivery_tables(metadata)
entries = sa.Table(
    "entries", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source_key", sa.String(300), nullable=False, unique=True),
    sa.Column("note", sa.Text, nullable=False),
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A Database on a fresh schema, its tables analyzed while empty (as after a deployment)."""
    async with fresh_schema(database_url, metadata, tables, prefix="st") as database:
        async with database.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("ANALYZE entries"))
        yield database


async def _fill(db: Database, rows: int) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(sa.text(
            "INSERT INTO entries (id, source_key, note) SELECT g, 'src-' || g, repeat('x', 200)"
            " FROM generate_series(1, :rows) g"), {"rows": rows})


async def _changes_counted(db: Database, table: str, at_least: int) -> None:
    """Wait until PostgreSQL's cumulative statistics show the writes (they are flushed about once a second)."""
    for _ in range(100):
        if any(t.name == table and t.changed >= at_least for t in await table_growth(db)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{table}: changes never counted")


async def _plan(conn: AsyncConnection) -> str:
    rows = (await conn.execute(sa.text("EXPLAIN EXECUTE seen_keys('{src-x, src-y}')"))).all()
    await conn.commit()  # a transaction holding the table's lock would not see the new statistics
    return "\n".join(row[0] for row in rows)


async def test_a_lookup_planned_while_the_table_was_empty_uses_the_index_once_the_table_grew(db: Database) -> None:
    async with db.engine.connect() as session:
        await session.execute(sa.text(
            "PREPARE seen_keys(varchar[]) AS SELECT source_key FROM entries WHERE source_key = ANY($1)"))
        for _ in range(6):  # after five runs PostgreSQL keeps a generic plan
            await session.execute(sa.text("EXECUTE seen_keys('{a, b}')"))
        await session.commit()
        await _fill(db, 20_000)
        assert "Seq Scan on entries" in await _plan(session)  # the trap: a whole scan per lookup

        await _changes_counted(db, "entries", 20_000)
        assert await analyze_grown(db, min_rows=1_000, growth=0.5) == ["entries"]

        plan = await _plan(session)
        assert "Seq Scan" not in plan and "entries_source_key_key" in plan


async def test_each_analysis_is_counted_in_the_metrics(db: Database) -> None:
    before = REGISTRY.get_sample_value("redress_db_tables_analyzed_total", {"table": "entries"}) or 0.0
    await _fill(db, 2_000)
    await _changes_counted(db, "entries", 2_000)
    assert await analyze_grown(db, min_rows=1_000, growth=0.5) == ["entries"]
    assert REGISTRY.get_sample_value("redress_db_tables_analyzed_total", {"table": "entries"}) == before + 1


async def test_tables_that_changed_little_are_left_alone(db: Database) -> None:
    await _fill(db, 500)
    await _changes_counted(db, "entries", 500)
    assert await analyze_grown(db, min_rows=1_000, growth=0.5) == []


async def test_the_service_loop_analyzes_a_grown_table_and_stops_when_asked(db: Database) -> None:
    await _fill(db, 3_000)
    await _changes_counted(db, "entries", 3_000)
    stop = asyncio.Event()
    loop = asyncio.create_task(keep_statistics(db, 0.2, 1_000, 0.5, stop.is_set))
    for _ in range(100):
        if not any(t.name == "entries" and t.changed for t in await table_growth(db)):
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(loop, timeout=5)
    assert all(t.changed == 0 for t in await table_growth(db) if t.name == "entries")


async def test_an_unreachable_database_is_logged_and_does_not_stop_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    engine = create_async_engine(f"postgresql+asyncpg://nobody@127.0.0.1:1/{uuid.uuid4().hex}",
                                 connect_args={"timeout": 1})
    gone = Database(engine, tables, "public")
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="shared.statistics"):
        loop = asyncio.create_task(keep_statistics(gone, 0.1, 1_000, 0.5, stop.is_set))
        for _ in range(100):
            if len([r for r in caplog.records if "could not refresh table statistics" in r.message]) >= 2:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(loop, timeout=5)
    await engine.dispose()
    assert len([r for r in caplog.records if "could not refresh table statistics" in r.message]) >= 2


async def test_sqlite_has_nothing_to_analyze(tmp_path: object) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    assert await analyze_grown(Database(engine, tables, None), min_rows=1, growth=0.1) == []
    await engine.dispose()


async def test_while_another_replica_analyzes_the_schema_this_one_skips(db: Database) -> None:
    await _fill(db, 3_000)
    await _changes_counted(db, "entries", 3_000)
    async with db.engine.connect() as other:
        assert await other.scalar(sa.text("SELECT pg_try_advisory_lock(hashtext(current_schema() || '/analyze'))"))
        assert await analyze_grown(db, min_rows=1_000, growth=0.5) == []
        await other.execute(sa.text("SELECT pg_advisory_unlock(hashtext(current_schema() || '/analyze'))"))
        await other.commit()
    assert await analyze_grown(db, min_rows=1_000, growth=0.5) == ["entries"]
