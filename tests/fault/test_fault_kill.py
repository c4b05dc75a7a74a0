"""kill -9 each service in turn while complaints flow: nothing lost, nothing done twice."""

import asyncio
from pathlib import Path

import pytest

from tests.support.events import EventTap
from tests.support.faults import BrokerProcess
from tests.support.scenario import flow_exactly_once
from tests.support.stack import Stack, migrate_all, running_stack, stack_env

pytestmark = pytest.mark.slow


def _kill_and_restart(stack: Stack, name: str, after: float):
    async def fault() -> None:
        await asyncio.sleep(after)
        await asyncio.to_thread(stack.restart, name, 9)

    return fault


async def test_kill_9_each_service_mid_stream(
    broker_process: BrokerProcess, fault_database: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    address = broker_process.address_file.read_text().strip()
    env = stack_env(fault_database, address, tmp_path / "data")
    migrate_all(env)
    with running_stack(env, artifacts_dir / "fault-kill") as stack:
        async with EventTap(address) as tap:
            report = await flow_exactly_once(
                "kill-9-each-service", stack, tap, fault_database, artifacts_dir, count=240,
                during_intake=[_kill_and_restart(stack, "intake", 2), _kill_and_restart(stack, "routing", 2)],
                during_resolution=[_kill_and_restart(stack, "recovery", 1.5),
                                   _kill_and_restart(stack, "loyalty", 1.5)],
            )
    assert report.lost == 0 and report.duplicated_effects == 0
