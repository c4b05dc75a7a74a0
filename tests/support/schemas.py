"""A Database on a schema of its own, for tests of the shared layer on the session's PostgreSQL database."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import Database, DeliveryTables


@asynccontextmanager
async def fresh_schema(
    database_url: str, metadata: sa.MetaData, tables: DeliveryTables, *, prefix: str = "t", schema: str | None = None,
    pool_size: int = 2,
) -> AsyncIterator[Database]:
    """``metadata``'s tables created in a new schema (``prefix`` and a random suffix unless named), dropped after."""
    schema = schema or f"{prefix}_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(database_url, pool_size=pool_size, max_overflow=0,
                                 connect_args={"server_settings": {"search_path": schema}})
    async with engine.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(metadata.create_all)
    try:
        yield Database(engine, tables, schema)
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


@asynccontextmanager
async def sqlite_file(path: Path, metadata: sa.MetaData, tables: DeliveryTables) -> AsyncIterator[Database]:
    """``metadata``'s tables created in a SQLite file at ``path``."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield Database(engine, tables, None)
    await engine.dispose()


def capture_statements(db: Database) -> list[str]:
    """The SQL text of every statement ``db``'s engine runs from now on."""
    seen: list[str] = []
    sa.event.listen(db.engine.sync_engine, "before_cursor_execute",
                    lambda _c, _cur, statement, *_rest: seen.append(statement))
    return seen
