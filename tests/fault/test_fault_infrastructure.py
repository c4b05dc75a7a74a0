"""The broker and the database go away under load and come back: accepted work is not lost."""

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.complaints import signed_post, web_complaint
from tests.support.events import EventTap
from tests.support.faults import BrokerProcess, PrivatePostgres
from tests.support.scenario import flow_exactly_once
from tests.support.stack import migrate_all, running_stack, stack_env

pytestmark = pytest.mark.slow


async def test_broker_away_intake_keeps_accepting(
    broker_process: BrokerProcess, fault_database: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    address = broker_process.address_file.read_text().strip()
    env = stack_env(fault_database, address, tmp_path / "data")
    migrate_all(env)
    accepted_while_away: list[int] = []

    with running_stack(env, artifacts_dir / "fault-broker") as stack:

        async def broker_away() -> None:
            await asyncio.sleep(2)
            broker_process.pause()
            try:
                async with httpx.AsyncClient(timeout=5) as client:
                    for _ in range(10):
                        resp = await asyncio.to_thread(
                            signed_post, httpx.Client(timeout=5), stack.url("intake"), "web", web_complaint()
                        )
                        accepted_while_away.append(resp.status_code)
                        await asyncio.sleep(0.3)
                    del client
            finally:
                broker_process.resume()

        async with EventTap(address) as tap:
            report = await flow_exactly_once(
                "broker-away", stack, tap, fault_database, artifacts_dir, count=200, during_intake=[broker_away]
            )
    assert accepted_while_away == [202] * 10
    assert report.lost == 0 and report.duplicated_effects == 0


async def test_postgres_restart_under_load(
    broker_process: BrokerProcess, private_postgres: PrivatePostgres, tmp_path: Path, artifacts_dir: Path
) -> None:
    address = broker_process.address_file.read_text().strip()
    env = stack_env(private_postgres.url, address, tmp_path / "data")
    migrate_all(env)

    with running_stack(env, artifacts_dir / "fault-postgres") as stack:

        async def crash_postgres() -> None:
            await asyncio.sleep(2)
            await asyncio.to_thread(private_postgres.restart, 3.0)

        async with EventTap(address) as tap:
            report = await flow_exactly_once(
                "postgres-restart", stack, tap, private_postgres.url, artifacts_dir, count=200,
                during_intake=[crash_postgres], during_resolution=[crash_postgres],
            )
    assert report.lost == 0 and report.duplicated_effects == 0
    assert report.responses.get("503", 0) > 0, f"no request saw the outage: {report.responses}"
