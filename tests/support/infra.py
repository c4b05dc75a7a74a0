"""Real infrastructure for tests: a throwaway PostgreSQL database and the embedded broker."""

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

ADMIN_DSN = os.environ.get("TEST_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_OPERATOR_SECRET = "test-operator-secret-0123456789abcdef"
CHANNELS = ("web", "app", "email", "phone", "chat", "social", "store", "generic")
# Channel keys of the test stack, in INTAKE_CHANNEL_KEYS's format.
TEST_CHANNEL_KEYS = {c: [{"key_id": f"{c}-test", "secret": f"{c}-test-secret-0123456789abcdef"}] for c in CHANNELS}


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def throwaway_database() -> Iterator[str]:
    """Create a fresh database; yield its SQLAlchemy URL; drop it afterwards."""
    name = f"redress_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
