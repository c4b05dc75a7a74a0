"""Running services as real uvicorn processes for end-to-end, fault and browser tests."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.auth import issue_token
from shared.devstack import ROOT, ServiceProcess
from shared.embedded_broker import start_mock_cluster
from shared.events.vocabulary import Role
from tests.support.infra import TEST_CHANNEL_KEYS, TEST_OPERATOR_SECRET, free_port, throwaway_database

SERVICES = ("intake", "routing", "recovery", "loyalty")


def stack_env(database_url: str, bootstrap: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for every service of a test stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTAKE_", "ROUTING_", "RECOVERY_", "LOYALTY_"))}
    env.update(
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        OPERATOR_TOKEN_SECRET=TEST_OPERATOR_SECRET,
        DATA_DIR=str(data_dir),
        LOG_LEVEL="INFO",
        INTAKE_CHANNEL_KEYS=json.dumps(TEST_CHANNEL_KEYS),
    )
    for name in SERVICES:
        prefix = name.upper()
        env[f"{prefix}_KAFKA_FETCH_MAX_WAIT_MS"] = "10"
        env[f"{prefix}_KAFKA_LINGER_MS"] = "0"
        env[f"{prefix}_OUTBOX_POLL_SECONDS"] = "0.5"
        env[f"{prefix}_KAFKA_ASSIGNOR_DELAY_MS"] = "500"
        env[f"{prefix}_DB_POOL_SIZE"] = "3"
        # Tests and the fuzzer send bursts; the rate-limit test sets low limits on a stack of its own.
        env[f"{prefix}_OPERATOR_RATE_PER_SECOND"] = "10000"
        env[f"{prefix}_OPERATOR_RATE_BURST"] = "10000"
    env.update(extra)
    return env


def migrate_all(env: dict[str, str], service: str = "all") -> None:
    """Upgrade every service's schema (or one service's) in the test database."""
    subprocess.run([sys.executable, "-m", "shared.migrate", service], cwd=ROOT, env=env, check=True,
                   capture_output=True)


@contextmanager
def private_service_env(
    service: str, data_dir: Path, bootstrap: str | None = None, **extra: str
) -> Iterator[dict[str, str]]:
    """One service's environment on a throwaway database with its schema migrated, and on a broker
    of its own unless ``bootstrap`` is given."""
    owner = None
    if bootstrap is None:
        owner, bootstrap = start_mock_cluster()
    try:
        with throwaway_database() as url:
            env = stack_env(url, bootstrap, data_dir, **extra)
            migrate_all(env, service)
            yield env
    finally:
        del owner


@contextmanager
def service_process(
    service: str, env: dict[str, str], log_dir: Path, label: str | None = None, **extra: str
) -> Iterator[ServiceProcess]:
    """One process of ``service`` under uvicorn on a free port, ready, and stopped afterwards."""
    log_dir.mkdir(parents=True, exist_ok=True)
    proc = ServiceProcess(service, free_port(), {**env, **extra}, log_dir / f"{label or service}.log")
    proc.start()
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@dataclass
class Stack:
    """A set of running services."""

    services: dict[str, ServiceProcess]
    env: dict[str, str]

    def url(self, name: str) -> str:
        """Base URL of one service."""
        return self.services[name].url

    def client(self, name: str, role: Role | None = None, subject: str = "test-operator") -> httpx.Client:
        """An HTTP client for one service, authenticated as an operator when ``role`` is given."""
        headers = {"Authorization": f"Bearer {operator_token(role, subject)}"} if role else {}
        return httpx.Client(base_url=self.url(name), headers=headers, timeout=10)

    def restart(self, name: str, sig: int = 15, **env_overrides: str) -> ServiceProcess:
        """Stop one service with ``sig`` and start it again on the same port."""
        old = self.services[name]
        old.stop(sig)
        new = ServiceProcess(name, old.port, {**old.env, **env_overrides}, old.log_path)
        new.start()
        new.wait_ready()
        self.services[name] = new
        return new


def operator_token(role: Role | None, subject: str = "test-operator") -> str:
    """A valid operator token for the test secret."""
    return issue_token(TEST_OPERATOR_SECRET, subject, role or Role.AGENT)


@contextmanager
def running_stack(env: dict[str, str], data_dir: Path, names: tuple[str, ...] = SERVICES) -> Iterator[Stack]:
    """Start services on free ports, wait until ready, stop them afterwards (logs kept in data_dir)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    services = {n: ServiceProcess(n, free_port(), env, data_dir / f"{n}.log") for n in names}
    try:
        for proc in services.values():
            proc.start()
        for proc in services.values():
            proc.wait_ready()
        yield Stack(services, env)
    finally:
        for proc in services.values():
            proc.stop()
