"""Async database access: one engine per service, its own schema, and the delivery tables.

PostgreSQL in tests and production (each service in its own schema through ``search_path``);
SQLite files as the embedded default. Tables are SQLAlchemy Core; the delivery tables
(outbox, inbox, timers, idempotency keys) are added to every service's metadata by
``add_delivery_tables``.
"""

import functools
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic_core import from_json
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.settings import ServiceSettings


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite returns naive ones)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored; use timezone-aware UTC")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class DeliveryTables:
    """The tables that make delivery exactly-once in effect."""

    outbox: sa.Table
    inbox: sa.Table
    timers: sa.Table
    idempotency: sa.Table


def add_delivery_tables(metadata: sa.MetaData) -> DeliveryTables:
    """Define outbox, inbox, timers and idempotency-key tables in a service's metadata."""
    outbox = sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("published_at", UtcDateTime, nullable=True),
        sa.Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        ),
    )
    inbox = sa.Table(
        "inbox",
        metadata,
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("processed_at", UtcDateTime, nullable=False),
    )
    timers = sa.Table(
        "timers",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("due_at", UtcDateTime, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("fired_at", UtcDateTime, nullable=True),
        sa.Column("cancelled_at", UtcDateTime, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.UniqueConstraint("kind", "key", name="uq_timers_kind_key"),
        sa.Index(
            "ix_timers_pending_due",
            "due_at",
            postgresql_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
            sqlite_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
        ),
    )
    idempotency = sa.Table(
        "idempotency_keys",
        metadata,
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    return DeliveryTables(outbox=outbox, inbox=inbox, timers=timers, idempotency=idempotency)


def make_engine(settings: ServiceSettings) -> AsyncEngine:
    """An engine bound to this service's schema (PostgreSQL) or file (SQLite)."""
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Parameters hold complaint text and contacts: keep them out of error messages and logs.
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, hide_parameters=True, json_deserializer=from_json
        )

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    engine = create_async_engine(
        url,
        hide_parameters=True,
        json_deserializer=from_json,  # JSON columns read with pydantic's parser: less than half json.loads' time
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        connect_args={"server_settings": {"search_path": settings.db_schema or "public"}, "timeout": 5},
    )
    ping_idle_connections(engine)
    return engine


_USED_AT = "redress_used_at"
IDLE_PING_SECONDS = 1.0


def ping_idle_connections(engine: AsyncEngine, idle_seconds: float = IDLE_PING_SECONDS) -> None:
    """Check a pooled connection on check-out only when it sat idle, replacing it when the server is gone.

    ``pool_pre_ping`` costs three round trips on every check-out with asyncpg (BEGIN, a query,
    ROLLBACK): as much as the work of a small transaction. A connection checked in a moment ago was
    just proven alive; one idle for ``idle_seconds`` (say, across a database restart) is pinged.
    A connection that dies in use anyway is invalidated with the whole pool by SQLAlchemy.
    """

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _fresh(_dbapi_conn, record) -> None:  # type: ignore[no-untyped-def]
        record.info[_USED_AT] = time.monotonic()

    @sa.event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_conn, record) -> None:  # type: ignore[no-untyped-def]
        if record is not None:
            record.info[_USED_AT] = time.monotonic()

    @sa.event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        if time.monotonic() - record.info.get(_USED_AT, 0.0) < idle_seconds:
            return
        try:
            dbapi_conn.ping()
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"pooled connection is gone: {exc}") from exc
        record.info[_USED_AT] = time.monotonic()


class Database:
    """The engine plus transaction helpers that run hooks after commit (to wake the outbox relay)."""

    def __init__(self, engine: AsyncEngine, tables: DeliveryTables, schema: str | None) -> None:
        self.engine = engine
        self.tables = tables
        self.schema = schema
        self.is_postgres = engine.dialect.name == "postgresql"
        self._after_commit: list[Callable[[], None]] = []

    def on_commit(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` after every transaction that wrote to the outbox commits."""
        self._after_commit.append(hook)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction; commit on success, roll back on error, then run after-commit hooks.

        Rows given to ``defer_insert`` inside it are written just before the commit, one multi-row
        INSERT per table, so a batch of events costs one statement instead of one per event.
        """
        async with self.engine.begin() as conn:
            # Held once: after the server dropped the connection, conn.info itself raises PendingRollbackError,
            # which would hide the (transient) error that callers answer with 503 or retry.
            info = conn.info
            info["outbox_dirty"] = False
            info[_DEFERRED] = {}
            info[_NOTIFY] = set()
            try:
                yield conn
                await _flush_deferred(conn)
            finally:
                # info outlives the transaction (it belongs to the pooled connection): never leave rows behind.
                info.pop(_DEFERRED, None)
                info.pop(_NOTIFY, None)
                info.pop(_SKIP_CONFLICTS, None)
            dirty = info.get("outbox_dirty", False)
        if dirty:
            for hook in self._after_commit:
                hook()

    async def ping(self) -> None:
        """Raise if the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


_DEFERRED = "redress_deferred_inserts"
# The payload of the NOTIFY a Database.transaction sends: its commit already woke this process's
# relay (after-commit hook), so the relay's listener skips notifications of its own origin.
NOTIFY_ORIGIN = uuid.uuid4().hex
_NOTIFY = "redress_deferred_notify"
_SKIP_CONFLICTS = "redress_deferred_skip_conflicts"


async def driver_in_transaction(conn: AsyncConnection) -> Any:
    """The asyncpg connection under ``conn``, inside ``conn``'s transaction (PostgreSQL).

    For what SQLAlchemy cannot send, such as one statement executed for many parameter sets with
    their rows returned in a single round trip. SQLAlchemy begins the driver's transaction only when
    it sends its first statement, so a statement sent to the driver before that would run, and
    commit, on its own: the transaction is begun here first (the same BEGIN SQLAlchemy would send).
    """
    adapted = (await conn.get_raw_connection()).dbapi_connection
    async with adapted._execute_mutex:
        if adapted._transaction is None and conn.in_transaction():
            await adapted._start_transaction()
    return adapted._connection


async def defer_insert(
    conn: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]], *, skip_conflicts: bool = False
) -> None:
    """Insert ``rows`` at the end of the ``Database.transaction`` they belong to (one statement per table).

    Outside such a transaction, or inside a savepoint (whose rollback must take the rows with it),
    the rows are inserted at once. Use it only for rows nothing in the same transaction reads back
    before ``flush_deferred_rows``. ``skip_conflicts`` drops rows whose key exists (ON CONFLICT DO
    NOTHING); a table's deferred rows all skip conflicts or none do.
    """
    if not rows:
        return
    pending = conn.info.get(_DEFERRED)
    if pending is None or conn.in_nested_transaction():
        await insert_rows(conn, table, rows, skip_conflicts=skip_conflicts)
        return
    skipping = conn.info.setdefault(_SKIP_CONFLICTS, set())
    if table in pending and (table in skipping) != skip_conflicts:
        raise ValueError(f"rows of {table.name} deferred both with and without skip_conflicts")
    if skip_conflicts:
        skipping.add(table)
    pending.setdefault(table, []).extend(rows)


async def flush_deferred_rows(conn: AsyncConnection) -> None:
    """Write the rows deferred so far now (the NOTIFY still waits for the end of the transaction).

    For a transaction that goes on to read those tables: a consumer calls it between the handlers
    that share one transaction.
    """
    if conn.info.get(_DEFERRED):
        await _flush_deferred(conn, notify=False)


async def defer_notify(conn: AsyncConnection, channel: str) -> None:
    """PostgreSQL ``NOTIFY channel`` once per transaction (at its end), or at once outside one."""
    channels = conn.info.get(_NOTIFY)
    if channels is None or conn.in_nested_transaction():
        await conn.execute(sa.text(f"NOTIFY {channel}"))
        return
    channels.add(channel)


async def _flush_deferred(conn: AsyncConnection, *, notify: bool = True) -> None:
    """Write the deferred rows (in the order their tables were first used) and send the notifications.

    On PostgreSQL all of it is one statement (``_one_statement_flush``) when every table's rows allow.
    """
    pending: dict[sa.Table, list[dict[str, Any]]] = conn.info.get(_DEFERRED) or {}
    skipping: set[sa.Table] = conn.info.pop(_SKIP_CONFLICTS, None) or set()
    channels = sorted(conn.info.get(_NOTIFY) or ()) if notify else []
    if notify:
        conn.info[_NOTIFY] = set()
    if not pending and not channels:
        return
    if conn.dialect.name == "postgresql" and all(_unnestable(table, rows) for table, rows in pending.items()):
        statement, params = _one_statement_flush(conn.dialect, list(pending.items()), channels, skipping)
        pending.clear()
        await conn.exec_driver_sql(statement, params)
        return
    while pending:
        table = next(iter(pending))
        statement = dialect_insert(conn.dialect.name, table)
        if table in skipping:
            statement = statement.on_conflict_do_nothing()
        # One executemany per run of rows with the same keys: it takes the columns from the first row.
        for _, same_keys in itertools.groupby(pending.pop(table), key=lambda row: tuple(row)):
            await conn.execute(statement, list(same_keys))
    for channel in channels:
        await conn.execute(sa.text(f"NOTIFY {channel}, '{NOTIFY_ORIGIN}'"))


def _unnestable(table: sa.Table, rows: list[dict[str, Any]]) -> bool:
    """Rows that can go in as column arrays: the same keys in each, and no Python-side default left to apply."""
    keys = rows[0].keys()
    if any(row.keys() != keys for row in rows):
        return False
    if any(isinstance(table.c[name].type, sa.ARRAY) for name in keys):
        return False  # unnest would flatten an array of arrays
    return all(column.default is None for column in table.columns if column.name not in keys)


def _one_statement_flush(
    dialect: sa.Dialect,
    pending: list[tuple[sa.Table, list[dict[str, Any]]]],
    channels: list[str],
    skipping: AbstractSet[sa.Table] = frozenset(),
) -> tuple[str, tuple[Any, ...]]:
    """Every table's rows and every NOTIFY as one statement: one round trip instead of one per table.

    Each table's rows are one ``INSERT ... SELECT * FROM unnest(column arrays)`` in a WITH clause, so
    the text depends only on the tables and columns, never on the number of rows (asyncpg prepares it
    once). Foreign keys are checked at the end of the statement, when every table's rows are in.
    """
    shape = tuple((table, tuple(rows[0]), table in skipping) for table, rows in pending)
    text, processors = _flush_shape(dialect, shape, tuple(channels))
    params: list[Any] = []
    for (_, rows), (keys, processes) in zip(pending, processors, strict=True):
        for key, process in zip(keys, processes, strict=True):
            values = [row[key] for row in rows]
            params.append([process(v) for v in values] if process else values)
    for channel in channels:
        params += [channel, NOTIFY_ORIGIN]
    return text, tuple(params)


_Processors = tuple[tuple[tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]], ...]


@functools.lru_cache(maxsize=256)
def _flush_shape(
    dialect: sa.Dialect, shape: tuple[tuple[sa.Table, tuple[str, ...], bool], ...], channels: tuple[str, ...]
) -> tuple[str, _Processors]:
    """The flush statement of these tables, columns and channels, and each column's value conversion (built once)."""
    quote = dialect.identifier_preparer
    parts: list[str] = []
    processors = []
    count = 0
    for n, (table, keys, skip) in enumerate(shape):
        columns = [table.c[name] for name in keys]
        arrays = []
        for column in columns:
            count += 1
            arrays.append(f"${count}::{column.type.compile(dialect)}[]")
        processors.append((keys, tuple(column.type.bind_processor(dialect) for column in columns)))
        names = ", ".join(quote.quote(column.name) for column in columns)
        on_conflict = " ON CONFLICT DO NOTHING" if skip else ""
        parts.append(f"w{n} AS (INSERT INTO {quote.format_table(table)} ({names}) "
                     f"SELECT * FROM unnest({', '.join(arrays)}){on_conflict})")
    notices = []
    for _ in channels:
        count += 2
        notices.append(f"pg_notify(${count - 1}, ${count})")
    head = f"WITH {', '.join(parts)} " if parts else ""
    return f"{head}SELECT {', '.join(notices) or '1'}", tuple(processors)


async def insert_rows(
    conn: AsyncConnection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    *,
    skip_conflicts: bool = False,
    returning: Sequence[sa.Column[Any]] = (),
) -> list[sa.Row[Any]]:
    """Insert ``rows`` in one statement (skipping rows whose key exists if asked); the ``returning`` rows.

    On PostgreSQL the statement takes one array per column (``unnest_insert``), so its text is the
    same whatever the number of rows: asyncpg and PostgreSQL prepare and plan it once, where a
    multi-row VALUES is a new statement for every row count. Elsewhere, SQLAlchemy's multi-row insert.
    """
    if not rows:
        return []
    if conn.dialect.name == "postgresql" and _unnestable(table, rows):
        keys = tuple(rows[0])
        statement = _unnest_statement(table, keys, skip_conflicts, tuple(returning))
        result = await conn.execute(statement, unnest_params(table, keys, rows))
        return list(result) if returning else []
    statement = dialect_insert(conn.dialect.name, table)
    if skip_conflicts:
        statement = statement.on_conflict_do_nothing()
    if returning:
        statement = statement.returning(*returning)
    inserted: list[sa.Row[Any]] = []
    # A multi-row insert takes its columns from the first row: one per run of rows with the same keys.
    for _, same_keys in itertools.groupby(rows, key=lambda row: tuple(row)):
        result = await conn.execute(statement, list(same_keys))
        inserted += list(result) if returning else []
    return inserted


def unnest_insert(table: sa.Table, keys: Sequence[str]) -> Any:
    """PostgreSQL ``INSERT INTO table (keys) SELECT * FROM unnest(one array per key)``.

    Execute it with ``unnest_params(table, keys, rows)``; add ON CONFLICT or RETURNING as for any
    insert. JSON values travel as text and are cast back: an array of JSON lists would otherwise be
    taken for a two-dimensional array.
    """
    columns = [table.c[key] for key in keys]
    arrays = [sa.bindparam(f"unnest_{c.name}", type_=postgresql.ARRAY(_array_item_type(c))) for c in columns]
    source = sa.func.unnest(*arrays).table_valued(*[sa.column(c.name, _array_item_type(c)) for c in columns])
    source = source.render_derived()
    values = [sa.cast(source.c[c.name], c.type) if _is_json(c) else source.c[c.name] for c in columns]
    return postgresql.insert(table).from_select(list(keys), sa.select(*values))


def unnest_params(table: sa.Table, keys: Sequence[str], rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The column arrays ``unnest_insert(table, keys)`` takes."""
    params = {}
    for key in keys:
        values = [row[key] for row in rows]
        column = table.c[key]
        if _is_json(column):
            # As SQLAlchemy's JSON type stores it: None is JSON null unless the type says SQL NULL.
            keep_null = column.type.none_as_null  # type: ignore[attr-defined]
            values = [None if value is None and keep_null else json.dumps(value) for value in values]
        params[f"unnest_{key}"] = values
    return params


def _is_json(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, sa.JSON)


def _array_item_type(column: sa.Column[Any]) -> Any:
    return sa.Text() if _is_json(column) else column.type


@functools.lru_cache(maxsize=256)
def _unnest_statement(
    table: sa.Table, keys: tuple[str, ...], skip_conflicts: bool, returning: tuple[sa.Column[Any], ...]
) -> Any:
    statement = unnest_insert(table, keys)
    if skip_conflicts:
        statement = statement.on_conflict_do_nothing()
    return statement.returning(*returning) if returning else statement


def any_of(conn: AsyncConnection, column: sa.ColumnElement[Any], values: Iterable[Any]) -> sa.ColumnElement[bool]:
    """``column IN values`` as one array parameter on PostgreSQL (one statement text for any count)."""
    values = list(values)
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def any_of_param(column: sa.ColumnElement[Any], name: str, dialect: str) -> sa.ColumnElement[bool]:
    """``column`` equals one of a list bound later as ``name`` (for statements built once): one array
    parameter on PostgreSQL, so the statement is the same whatever the list's length (SQLite expands it)."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(sa.bindparam(name, expanding=True))


def dialect_insert(dialect_name: str, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (PostgreSQL, else SQLite's)."""
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    from sqlalchemy.dialects.sqlite import insert

    return insert(table)


async def insert_ignore(conn: AsyncConnection, table: sa.Table, values: dict[str, object]) -> bool:
    """Insert a row unless its key exists; True when this call inserted it."""
    statement = dialect_insert(conn.dialect.name, table).values(**values).on_conflict_do_nothing()
    result = await conn.execute(statement)
    return bool(result.rowcount)
