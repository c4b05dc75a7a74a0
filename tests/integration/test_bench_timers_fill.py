"""The timer benchmark's stream is a stream: due times spread over the window to the fraction of a second."""

import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from bench.scenarios.timers import SCHEMA, _fill
from shared.db import Database, add_delivery_tables
from tests.support.schemas import fresh_schema


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The benchmark's timers table on the test database."""
    metadata = sa.MetaData()
    async with fresh_schema(database_url, metadata, add_delivery_tables(metadata), schema=SCHEMA) as database:
        yield database


async def test_due_timers_are_spread_evenly_over_the_window(db: Database) -> None:
    first = time.time() + 100.25
    await _fill(db, pending=1_000, due=101, first_due=first, window=10.0)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(sa.text(
            "SELECT extract(epoch FROM due_at)::float8 AS at FROM timers ORDER BY due_at LIMIT 101"))).all()
        later = await conn.scalar(sa.text("SELECT count(*) FROM timers WHERE due_at > now() + interval '1 hour'"))
    due = [row.at for row in rows]
    assert due[0] == pytest.approx(first, abs=1e-3)
    assert due[-1] == pytest.approx(first + 10.0, abs=1e-3)
    assert due[50] == pytest.approx(first + 5.0, abs=1e-3)  # a tenth of a second apart, not one instant
    assert later == 899
