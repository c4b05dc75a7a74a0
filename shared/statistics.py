"""Fresh planner statistics for the tables of a service that grow fast.

PostgreSQL keeps the generic plan of a prepared statement (asyncpg prepares every statement) until
the statistics of a table it reads change. A table analyzed while nearly empty, as every table of
a new deployment is, gets plans that scan it whole: cheap at ten rows, a sequential scan of the
whole ledger for every batch of grants once an incident has added 40,000 rows in twenty seconds
(up to 384 ms per lookup in the incident benchmark). Autovacuum fixes it in time, but it visits a
database once a minute and analyzes a table after it grew by a tenth. So each service checks its
own schema every few seconds and analyzes a table whose changes since its last analysis reach
``db_analyze_growth`` of its size (and at least ``db_analyze_min_rows``): a table growing from
nothing is analyzed at about 1,000, 2,000, 4,000 ... rows, and its cached plans are made again.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from shared.db import Database
from shared.metrics import TABLES_ANALYZED

log = logging.getLogger(__name__)

_GROWTH = sa.text(
    "SELECT s.relname AS name, s.n_mod_since_analyze AS changed, c.reltuples AS rows"
    " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
    " WHERE s.schemaname = current_schema()"
)

_TURN_KEY = "hashtext(current_schema() || '/analyze')"
_TAKE_TURN = sa.text(f"SELECT pg_try_advisory_lock({_TURN_KEY})")
_END_TURN = sa.text(f"SELECT pg_advisory_unlock({_TURN_KEY})")


@dataclass(frozen=True)
class TableGrowth:
    """A table's rows as of its last analysis (negative: never analyzed) and its changes since."""

    name: str
    rows: float
    changed: int


def tables_to_analyze(tables: list[TableGrowth], min_rows: int, growth: float) -> list[str]:
    """The tables whose changes since their last analysis reach ``growth`` of their size and ``min_rows``."""
    return sorted(t.name for t in tables if t.changed >= min_rows and t.changed >= growth * max(t.rows, 0.0))


async def table_growth(db: Database) -> list[TableGrowth]:
    """The growth of every table of the service's schema (PostgreSQL's cumulative statistics)."""
    async with db.engine.connect() as conn:
        rows = (await conn.execute(_GROWTH)).all()
        await conn.rollback()
    return [TableGrowth(row.name, float(row.rows), int(row.changed)) for row in rows]


async def analyze_grown(db: Database, min_rows: int, growth: float) -> list[str]:
    """Analyze the tables that grew past the rule of ``tables_to_analyze``; their names."""
    if not db.is_postgres:
        return []  # SQLite plans every statement afresh
    names = tables_to_analyze(await table_growth(db), min_rows, growth)
    if not names:
        return []
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        # Replicas and workers of one service share its schema: one of them analyzes, the others skip.
        if not await conn.scalar(_TAKE_TURN):
            return []
        try:
            quote = conn.dialect.identifier_preparer.quote
            for name in names:
                await conn.execute(sa.text(f"ANALYZE {quote(name)}"))
                TABLES_ANALYZED.labels(table=name).inc()
        finally:
            await conn.execute(_END_TURN)
    log.info("analyzed %s: they grew since their last analysis", ", ".join(names))
    return names


async def keep_statistics(
    db: Database, interval: float, min_rows: int, growth: float, stopping: Callable[[], bool]
) -> None:
    """Every ``interval`` seconds, analyze the tables that grew (until ``stopping()``); 0 turns it off."""
    if not db.is_postgres or interval <= 0:
        return
    while not stopping():
        try:
            await analyze_grown(db, min_rows, growth)
        except Exception as exc:  # a restart or a missing privilege must not stop the service
            log.warning("could not refresh table statistics: %s", exc)
        waited = 0.0
        while waited < interval and not stopping():  # short steps, not to hold up a shutdown
            await asyncio.sleep(min(0.5, interval))
            waited += 0.5
