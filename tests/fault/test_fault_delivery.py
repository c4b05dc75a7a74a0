"""Redelivered, reordered and poisonous events; two replicas of routing and recovery at once."""

import asyncio
import random
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from shared.devstack import ServiceProcess
from shared.topics import EVENT_TOPICS, Topic
from tests.support.events import EventTap
from tests.support.faults import BrokerProcess
from tests.support.infra import free_port
from tests.support.scenario import flow_exactly_once
from tests.support.stack import migrate_all, running_stack, stack_env
from tests.support.verify import effects_by, wait_groups_caught_up

pytestmark = pytest.mark.slow
CONSUMERS = ["routing", "recovery", "loyalty"]


async def test_events_delivered_again_and_out_of_order_have_no_second_effect(
    broker_process: BrokerProcess, fault_database: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    address = broker_process.address_file.read_text().strip()
    env = stack_env(fault_database, address, tmp_path / "data")
    migrate_all(env)
    with running_stack(env, artifacts_dir / "fault-redelivery") as stack:
        async with EventTap(address) as tap:
            report = await flow_exactly_once("redelivery", stack, tap, fault_database, artifacts_dir, count=60)
            before = {t: effects_by(tap, t, lambda e: e.id) for t in ("case.routed.v1", "compensation.issued.v1",
                                                                      "loyalty.points_changed.v1")}
            originals = [i for i in tap.items if i.envelope is not None and i.topic != str(Topic.DEAD_LETTER)]
            copies = originals * 2 + list(reversed(originals))
            random.Random(7).shuffle(copies[len(originals):])
            producer = AIOKafkaProducer(bootstrap_servers=address)
            await producer.start()
            try:
                for item in copies:
                    headers = [(k, v.encode()) for k, v in item.headers.items()]
                    await producer.send(item.topic, item.value, key=item.key.encode() if item.key else None,
                                        headers=headers)
                await producer.flush()
            finally:
                await producer.stop()
            await wait_groups_caught_up(address, CONSUMERS)
            after = {t: effects_by(tap, t, lambda e: e.id) for t in before}
    assert report.duplicated_effects == 0
    assert {t: set(v) for t, v in after.items()} == {t: set(v) for t, v in before.items()}
    assert len(copies) == 3 * len(originals) > 0


async def test_poison_event_on_every_topic_is_dead_lettered_and_flow_continues(
    broker_process: BrokerProcess, fault_database: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    address = broker_process.address_file.read_text().strip()
    env = stack_env(fault_database, address, tmp_path / "data")
    migrate_all(env)
    with running_stack(env, artifacts_dir / "fault-poison") as stack:
        async with EventTap(address) as tap:
            producer = AIOKafkaProducer(bootstrap_servers=address)
            await producer.start()
            try:
                for topic in EVENT_TOPICS:
                    await producer.send_and_wait(str(topic), b"\xff\xfe not an event", key=b"poison",
                                                 headers=[("ce_type", b"nonsense")])
            finally:
                await producer.stop()
            report = await flow_exactly_once("poison-every-topic", stack, tap, fault_database, artifacts_dir,
                                             count=40)
            await wait_groups_caught_up(address, CONSUMERS)
            dead = [i for i in tap.items if i.topic == str(Topic.DEAD_LETTER) and i.key == "poison"]
    assert report.lost == 0 and report.duplicated_effects == 0
    assert {i.headers["dlq_source_topic"] for i in dead} == {str(t) for t in EVENT_TOPICS}
    assert all("not JSON" in i.headers["dlq_error"] for i in dead)


async def test_two_replicas_of_routing_and_recovery_never_double_act(
    broker_process: BrokerProcess, fault_database: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    address = broker_process.address_file.read_text().strip()
    env = stack_env(fault_database, address, tmp_path / "data")
    migrate_all(env)
    logs = artifacts_dir / "fault-replicas"
    with running_stack(env, logs) as stack:
        extra = [ServiceProcess(n, free_port(), env, logs / f"{n}-2.log") for n in ("routing", "recovery")]
        try:
            for proc in extra:
                proc.start()
            for proc in extra:
                proc.wait_ready()
            async with EventTap(address) as tap:
                report = await flow_exactly_once("two-replicas", stack, tap, fault_database, artifacts_dir,
                                                 count=200)
        finally:
            for proc in extra:
                proc.stop()
    assert report.lost == 0 and report.duplicated_effects == 0


@pytest.mark.timeout(1200)
async def test_backlog_of_ten_thousand_events_drains_with_bounded_memory(
    broker_process: BrokerProcess, fault_database: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    import psutil

    from shared.db import utcnow
    from shared.envelope import new_event, to_kafka
    from shared.events.complaints import Classification, ComplaintReceived
    from shared.events.vocabulary import Category, Channel

    address = broker_process.address_file.read_text().strip()
    env = stack_env(fault_database, address, tmp_path / "data")
    migrate_all(env)
    with running_stack(env, artifacts_dir / "fault-backlog", names=("routing",)) as stack:
        routing = stack.services["routing"]
        routing.stop()
        producer = AIOKafkaProducer(bootstrap_servers=address, linger_ms=20, max_batch_size=256 * 1024)
        await producer.start()
        try:
            for i in range(10_000):
                complaint_id = str(uuid.uuid4())
                data = ComplaintReceived(
                    complaint_id=complaint_id, customer_id=f"backlog-{i % 997}", channel=Channel.WEB,
                    received_at=utcnow(), text="parcel late", classification=Classification(category=Category.OTHER),
                )
                key, value, headers = to_kafka(new_event(data, source="/test", subject=complaint_id,
                                                         correlation_id=complaint_id))
                await producer.send(str(Topic.COMPLAINTS), value, key=key, headers=headers)
            await producer.flush()
        finally:
            await producer.stop()
        restarted = stack.restart("routing")
        assert restarted.process
        proc = psutil.Process(restarted.process.pid)
        samples = [proc.memory_info().rss]
        drain = asyncio.create_task(wait_groups_caught_up(address, ["routing"], timeout=600))
        while not drain.done():
            samples.append(proc.memory_info().rss)
            await asyncio.sleep(0.5)
        await drain
    peak_mb = max(samples) / 2**20
    start_mb = samples[0] / 2**20
    (artifacts_dir / "reliability").mkdir(parents=True, exist_ok=True)
    (artifacts_dir / "reliability" / "backlog.txt").write_text(
        f"10000 events drained; routing RSS start {start_mb:.0f} MiB, peak {peak_mb:.0f} MiB, "
        f"{len(samples)} samples\n"
    )
    assert peak_mb < start_mb + 150, f"routing grew from {start_mb:.0f} to {peak_mb:.0f} MiB while draining"
