"""kill -9 each service in turn while complaints flow: nothing lost, nothing done twice."""

import asyncio
from pathlib import Path

import pytest

from tests.support.events import EventTap
from tests.support.faults import BrokerProcess
from tests.support.load import ComplaintStream
from tests.support.stack import migrate_all, running_stack, stack_env
from tests.support.verify import resolve_all, wait_effects_once, wait_outboxes_empty

pytestmark = pytest.mark.slow


async def test_kill_9_each_service_mid_stream(
    broker_process: BrokerProcess, fault_database: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    address = broker_process.address_file.read_text().strip()
    database_url = fault_database
    if True:
        env = stack_env(database_url, address, tmp_path / "data")
        migrate_all(env)
        with running_stack(env, artifacts_dir / "fault-kill") as stack:
            async with EventTap(address) as tap:
                stream = ComplaintStream(lambda: stack.url("intake"), count=240, rate=30).start()
                for name in ("intake", "routing"):
                    await asyncio.sleep(2)
                    await asyncio.to_thread(stack.restart, name, 9)
                await asyncio.to_thread(stream.join)
                assert not stream.failed
                complaints = set(stream.accepted.values())
                assert len(complaints) == 240

                routed = await wait_effects_once(tap, "case.routed.v1", lambda e: e.correlationid, complaints)
                resolving = asyncio.create_task(
                    asyncio.to_thread(resolve_all, stack, [e.data["case_id"] for e in routed.values()])
                )
                for name in ("recovery", "loyalty"):
                    await asyncio.sleep(1.5)
                    await asyncio.to_thread(stack.restart, name, 9)
                await resolving

                await wait_effects_once(tap, "case.resolved.v1", lambda e: e.correlationid, complaints)
                issued = await wait_effects_once(
                    tap, "compensation.issued.v1", lambda e: e.data["case_id"],
                    {e.data["case_id"] for e in routed.values()},
                )
                await wait_effects_once(
                    tap, "loyalty.points_changed.v1", lambda e: e.data["compensation_id"],
                    {e.data["compensation_id"] for e in issued.values() if e.data["remedy"]["points"] > 0},
                )
            await wait_outboxes_empty(database_url)
