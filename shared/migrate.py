"""Alembic migrations per service, each in its own schema (PostgreSQL) or file (SQLite).

Usage::

    python -m shared.migrate intake                 # upgrade intake to head
    python -m shared.migrate all                    # upgrade every service
    python -m shared.migrate routing downgrade base
    python -m shared.migrate loyalty revision -m "add surveys" --autogenerate
    python -m shared.migrate recovery current
"""

import argparse
import asyncio
import importlib
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.pool import NullPool

from shared.settings import ServiceSettings, load_settings

SERVICES = ("intake", "routing", "recovery", "loyalty")
ROOT = Path(__file__).resolve().parent.parent


def alembic_config(service: str) -> Config:
    """Alembic configuration pointing at one service's migrations folder."""
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "services" / service / "migrations"))
    cfg.set_main_option("service", service)
    return cfg


def service_settings_class(service: str) -> type[ServiceSettings]:
    """The service's ``Settings`` class."""
    return importlib.import_module(f"services.{service}.settings").Settings  # type: ignore[no-any-return]


def run_env(metadata: sa.MetaData, settings_cls: type[ServiceSettings]) -> None:
    """Body of every service's ``env.py``: migrate online through the async engine."""
    from alembic import context

    settings = load_settings(settings_cls)
    if context.is_offline_mode():
        context.configure(url=settings.resolved_database_url, target_metadata=metadata, literal_binds=True,
                          version_table_schema=settings.db_schema)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(metadata, settings))


async def _run_online(metadata: sa.MetaData, settings: ServiceSettings) -> None:
    from alembic import context
    from sqlalchemy.ext.asyncio import create_async_engine

    url = settings.resolved_database_url
    schema = settings.db_schema
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, poolclass=NullPool)
    else:
        engine = create_async_engine(
            url, poolclass=NullPool, connect_args={"server_settings": {"search_path": schema or "public"}}
        )
    async with engine.connect() as conn:
        if schema:
            await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await conn.commit()

        def migrate(sync_conn: sa.Connection) -> None:
            context.configure(
                connection=sync_conn,
                target_metadata=metadata,
                include_object=_not_alembic_version,
                version_table_schema=schema,
                render_as_batch=not schema,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()

        await conn.run_sync(migrate)
        await conn.commit()
    await engine.dispose()


def _not_alembic_version(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Autogenerate compares only the service's own tables, never Alembic's version table."""
    return not (type_ == "table" and name == "alembic_version")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m shared.migrate", description="Migrate Redress services.")
    parser.add_argument("service", choices=[*SERVICES, "all"])
    parser.add_argument("action", nargs="?", default="upgrade", choices=["upgrade", "downgrade", "revision", "current"])
    parser.add_argument("revision", nargs="?", default=None)
    parser.add_argument("-m", "--message", default="change")
    parser.add_argument("--autogenerate", action="store_true")
    args = parser.parse_args(argv)
    services = SERVICES if args.service == "all" else (args.service,)
    for service in services:
        cfg = alembic_config(service)
        if args.action == "upgrade":
            command.upgrade(cfg, args.revision or "head")
        elif args.action == "downgrade":
            command.downgrade(cfg, args.revision or "-1")
        elif args.action == "revision":
            command.revision(cfg, message=args.message, autogenerate=args.autogenerate)
        else:
            command.current(cfg)
        print(f"{service}: {args.action} done", file=sys.stderr)


if __name__ == "__main__":
    main()
