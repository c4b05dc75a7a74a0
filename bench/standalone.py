"""The stack for tools run on their own (profile, census): embedded broker, throwaway database, services."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.infra import Server, migrate_all, stack_env, throwaway_database
from bench.loadgen import LoadGenerator
from bench.scenarios.http import intake_env
from shared.embedded_broker import start_mock_cluster


@dataclass
class Standalone:
    """The running services (in the order asked for), the database's DSN and a load generator."""

    servers: list[Server]
    dsn: str
    loadgen: LoadGenerator


@contextmanager
def standalone_stack(names: list[str], logs: Path, **extra: str) -> Iterator[Standalone]:
    """Start ``names`` (intake with the benchmark's channel keys) on a fresh database; stop everything after."""
    owner, bootstrap = start_mock_cluster()
    loadgen = LoadGenerator()
    servers: list[Server] = []
    try:
        with throwaway_database() as (url, dsn):
            env = stack_env(url, bootstrap, logs, **extra)
            migrate_all(env)
            for name in names:
                service_env = intake_env(env) if name == "intake" else env
                servers.append(Server(name, f"services.{name}.app:app", service_env, logs / f"{name}.log").start())
            yield Standalone(servers, dsn, loadgen)
    finally:
        for server in servers:
            server.stop()
        loadgen.close()
        del owner
