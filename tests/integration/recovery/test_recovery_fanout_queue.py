"""The incident queue against a real database, without the HTTP layer: arrival order, stragglers, schema.

The fan-out reads the queue in arrival order behind a forward-only cursor. A customer can still land
behind it when two incidents' lists are queued by overlapping transactions; these tests show that
such a customer is compensated all the same, exactly once, and that the migrations build the
tables the code declares.
"""

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.recovery import incidents as inc
from services.recovery.fanout import FanOut
from services.recovery.models import delivery, metadata
from services.recovery.policy import load_policy
from services.recovery.schemas import IncidentIn
from services.recovery.settings import Settings
from shared.auth import Operator
from shared.db import Database, make_engine
from shared.events.vocabulary import Role
from shared.outbox import Emitter
from tests.support.stack import private_service_env

pytestmark = pytest.mark.slow

OPERATOR = Operator(subject="sup-zhao", role=Role.SUPERVISOR)


@pytest.fixture(scope="module")
def queue_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A freshly migrated database of recovery's own."""
    with private_service_env("recovery", tmp_path_factory.mktemp("recovery-queue")) as env:
        yield env


@pytest.fixture
async def parts(queue_env: dict[str, str]) -> AsyncIterator[tuple[Database, FanOut]]:
    """The database and a fan-out that sweeps from the start of the queue whenever it runs dry."""
    settings = Settings(database_url=queue_env["DATABASE_URL"], incident_sweep_seconds=0.001)
    db = Database(make_engine(settings), delivery, settings.db_schema)
    fan_out = FanOut(db, Emitter(db, "/redress/recovery"), load_policy(settings.policy_path), settings)
    try:
        yield db, fan_out
    finally:
        await db.engine.dispose()


async def _declare(db: Database, fan_out: FanOut, customers: list[str]) -> str:
    body = IncidentIn.model_validate(
        {
            "title": "Payment gateway down",
            "started_at": datetime.now(UTC).isoformat(),
            "customer_ids": customers,
            "more_customers": True,
        }
    )
    async with db.transaction() as conn:
        row = await inc.declare(conn, fan_out.emitter, fan_out.policy, body, OPERATOR)
    return str(row["incident_id"])


async def _drain(fan_out: FanOut) -> int:
    served = 0
    while got := await fan_out.fan_out_once():
        served += got
    return served


async def _figures(db: Database, incident_id: str) -> dict[str, Any]:
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT i.total, i.issued, "
                    "(SELECT count(*) FROM compensations c WHERE c.incident_id = i.incident_id) AS compensations, "
                    "(SELECT count(DISTINCT l.customer_id) FROM compensation_ledger l "
                    " WHERE l.incident_id = i.incident_id) AS paid, "
                    "(SELECT count(*) FROM incident_targets t WHERE t.incident_id = i.incident_id) AS queued "
                    "FROM incidents i WHERE i.incident_id = :i"
                ),
                {"i": incident_id},
            )
        ).one()
    return dict(row._mapping)


async def test_a_customer_queued_behind_the_cursor_is_still_compensated_once(parts: tuple[Database, FanOut]) -> None:
    db, fan_out = parts
    first = await _declare(db, fan_out, ["late-a-1"])
    second = await _declare(db, fan_out, ["late-b-1"])
    assert await _drain(fan_out) == 2
    # A part of the first list takes its queue positions, then commits only after a part of the
    # second list has been queued and served: its customers end up behind the fan-out's cursor.
    async with db.transaction() as slow:
        await inc.add_customers(slow, fan_out.policy, first, ["late-a-2", "late-a-3"])
        async with db.transaction() as quick:
            await inc.add_customers(quick, fan_out.policy, second, ["late-b-2", "late-b-3"])
        assert await _drain(fan_out) == 2
    assert await _drain(fan_out) == 2  # the slow part, found by the sweep from the start
    assert await _drain(fan_out) == 0
    for incident_id in (first, second):
        figures = await _figures(db, incident_id)
        assert figures == {"total": 3, "issued": 3, "compensations": 3, "paid": 3, "queued": 0}


async def test_a_part_sent_again_after_its_customers_were_paid_adds_nothing(parts: tuple[Database, FanOut]) -> None:
    db, fan_out = parts
    incident_id = await _declare(db, fan_out, ["again-1", "again-2"])
    await _drain(fan_out)
    async with db.transaction() as conn:
        again = ["again-2", "again-1", "again-3", "again-3"]
        progress = await inc.add_customers(conn, fan_out.policy, incident_id, again)
    assert progress["total"] == 3
    assert await _drain(fan_out) == 1
    assert await _figures(db, incident_id) == {"total": 3, "issued": 3, "compensations": 3, "paid": 3, "queued": 0}


async def test_the_migrations_build_the_tables_the_code_declares(parts: tuple[Database, FanOut]) -> None:
    db, _ = parts

    def differences(sync_conn: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        found = compare_metadata(context, metadata)
        return [d for d in found if not (d[0] == "remove_table" and d[1].name == "alembic_version")]

    async with db.engine.connect() as conn:
        assert await conn.run_sync(differences) == []
