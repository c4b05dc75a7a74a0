"""Routing's operator reads stay indexed as cases pile up: plans checked with EXPLAIN on a filled table.

The table holds 100,000 cases across every queue, most of them open. A plan is asserted, never a
time: the queue page and the board must walk an index in page order (no Sort node), both under
the plan made with the parameters' values and under the generic plan a prepared statement may
switch to later (asyncpg prepares every statement).
"""

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import create_async_engine

from services.routing import api
from services.routing.models import cases, metadata
from shared.events.vocabulary import Severity
from tests.support.infra import throwaway_database
from tests.support.stack import migrate_all, stack_env

FILLED = 100_000
# A prepared statement is planned with its parameters' values at first, and may switch to a generic
# plan (values unknown) after five executions: both must read the index.
PLAN_MODES = ("force_custom_plan", "force_generic_plan")
QUEUES = ("product_support", "accounts_security", "billing", "logistics", "policy_desk", "green_channel")

FILL = f"""
INSERT INTO cases (id, complaint_id, customer_id, category, severity, queue, state, customer_tier,
                   received_at, routed_at, next_warn_at, next_due_at, first_response_due, resolution_due)
SELECT 'case-' || g, 'complaint-' || g, 'cust-' || (g % 20000), 'product_usage',
       (ARRAY['P1', 'P2', 'P3', 'P4'])[1 + g % 4],
       (ARRAY{list(QUEUES)})[1 + g % {len(QUEUES)}],
       (ARRAY['new', 'new', 'open', 'waiting', 'resolved', 'resolved', 'new'])[1 + (g / 7) % 7],
       'standard', now() - make_interval(secs => g), now() - make_interval(secs => g),
       now() + make_interval(secs => (g::bigint * 7919) % 86400),
       now() + make_interval(secs => (g::bigint * 7919) % 100000),
       now() + make_interval(secs => (g::bigint * 7919) % 100000),
       now() + make_interval(secs => (g::bigint * 104729) % 300000)
FROM generate_series(1, {FILLED}) AS g
"""


@pytest.fixture(scope="module")
def routing_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated routing schema filled with 100,000 cases; yields its SQLAlchemy URL."""
    with throwaway_database() as url:
        env = stack_env(url, "127.0.0.1:9", tmp_path_factory.mktemp("routing-plan"))
        migrate_all(env, "routing")
        asyncio.run(_fill(url))
        yield url


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _fill(url: str) -> None:
    conn = await asyncpg.connect(_dsn(url), server_settings={"search_path": "routing"})
    try:
        await conn.execute(FILL)
        await conn.execute("VACUUM ANALYZE cases")
    finally:
        await conn.close()


def _positional(query: sa.Executable) -> tuple[str, list[Any]]:
    """The SQL routing sends for ``query`` and its parameters, as asyncpg receives them."""
    compiled = query.compile(dialect=asyncpg_dialect(), compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    return compiled.string, [params[name] for name in compiled.positiontup or ()]


async def _plans(url: str, query: sa.Executable) -> dict[str, dict[str, Any]]:
    """EXPLAIN's JSON plan of ``query`` run as a prepared statement, under each plan cache mode."""
    sql, params = _positional(query)
    conn = await asyncpg.connect(_dsn(url), server_settings={"search_path": "routing"})
    try:
        await conn.execute(f"PREPARE page AS {sql}")
        # EXECUTE takes no bound parameters: quoted literals, typed by the prepared statement.
        arguments = ", ".join("'" + str(value).replace("'", "''") + "'" for value in params)
        explain = f"EXPLAIN (FORMAT JSON) EXECUTE page({arguments})" if params else "EXPLAIN (FORMAT JSON) EXECUTE page"
        plans = {}
        for mode in PLAN_MODES:
            await conn.execute(f"SET plan_cache_mode = {mode}")
            plans[mode] = json.loads(await conn.fetchval(explain))[0]["Plan"]
        return plans
    finally:
        await conn.close()


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _assert_walks(plan: dict[str, Any], index: str) -> None:
    nodes = list(_nodes(plan))
    kinds = [n["Node Type"] for n in nodes]
    assert not any("Sort" in kind for kind in kinds), f"page sorted instead of read in order: {kinds}"
    scans = [(n["Node Type"], n.get("Index Name")) for n in nodes if "Scan" in n["Node Type"]]
    assert scans == [("Index Scan", index)], f"expected one index scan on {index}, got {scans}"


def _queue_page(queue: str, **filters: Any) -> sa.Select[Any]:
    conditions = [cases.c.queue == queue, *api._conditions(
        filters.get("severity"), filters.get("state"), filters.get("risk"), None, None, None
    )]
    return api.page_query(conditions, "deadline", 50, filters.get("offset", 0))


@pytest.mark.parametrize("filters", [{}, {"offset": 500}, {"severity": [Severity.P1, Severity.P2]}, {"state": ["new"]},
                                     {"state": ["waiting", "open", "new"]}],
                         ids=["default", "offset", "severity", "new-only", "open-states-any-order"])
def test_queue_page_reads_the_open_index_in_order(routing_database: str, filters: dict[str, Any]) -> None:
    plans = asyncio.run(_plans(routing_database, _queue_page("billing", **filters)))
    for mode, plan in plans.items():
        assert plan["Node Type"] == "Limit", mode
        _assert_walks(plan, "ix_cases_open_queue_due")


def test_board_of_every_queue_reads_the_open_index_in_order(routing_database: str) -> None:
    query = api.page_query(api._conditions(None, None, None, None, None, None), "deadline", 200, 0)
    for plan in asyncio.run(_plans(routing_database, query)).values():
        _assert_walks(plan, "ix_cases_open_due")


def test_state_filter_returns_exactly_the_states_asked(routing_database: str) -> None:
    async def states(chosen: list[str] | None) -> set[str]:
        engine = create_async_engine(routing_database, connect_args={"server_settings": {"search_path": "routing"}})
        try:
            async with engine.connect() as conn:
                query = sa.select(cases.c.state).where(cases.c.queue == "billing", api.state_filter(chosen))  # type: ignore[arg-type]
                return set((await conn.execute(query.distinct())).scalars())
        finally:
            await engine.dispose()

    assert asyncio.run(states(None)) == {"new", "open", "waiting"}
    assert asyncio.run(states(["resolved"])) == {"resolved"}
    assert asyncio.run(states(["waiting", "new"])) == {"new", "waiting"}


def test_models_and_migrations_agree(routing_database: str) -> None:
    """Autogenerate finds nothing to add: the indexes the model declares are the ones migrated."""

    def differences(sync_conn: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        found = compare_metadata(context, metadata)
        return [d for d in found if not (d[0] == "remove_table" and d[1].name == "alembic_version")]

    async def compare() -> list[Any]:
        engine = create_async_engine(routing_database, connect_args={"server_settings": {"search_path": "routing"}})
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(differences)
        finally:
            await engine.dispose()

    assert asyncio.run(compare()) == []


def test_open_index_predicate_is_the_api_default_filter(routing_database: str) -> None:
    """The partial indexes hold exactly the states the API lists by default (autogenerate compares
    columns, not predicates)."""

    async def predicates() -> dict[str, str]:
        conn = await asyncpg.connect(_dsn(routing_database))
        try:
            rows = await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = 'routing' AND indexname LIKE 'ix_cases_open%'"
            )
            return {r["indexname"]: r["indexdef"] for r in rows}
        finally:
            await conn.close()

    found = asyncio.run(predicates())
    assert set(found) == {"ix_cases_open_queue_due", "ix_cases_open_due"}
    for definition in found.values():
        assert "'new'" in definition and "'open'" in definition and "'waiting'" in definition
        assert "'resolved'" not in definition
