"""Fixtures for fault tests: infrastructure of the test's own that it may break."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faults import BrokerProcess, PrivatePostgres


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[BrokerProcess]:
    """An embedded broker in its own process."""
    broker = BrokerProcess(tmp_path)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster the test may crash and restart."""
    pg = PrivatePostgres()
    pg.start()
    yield pg
    pg.destroy()


@pytest.fixture
def fault_database() -> Iterator[str]:
    """A throwaway database on the machine's PostgreSQL for one fault test."""
    from tests.support.infra import throwaway_database

    with throwaway_database() as url:
        yield url
