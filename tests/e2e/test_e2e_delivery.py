"""Delivery guarantees across real processes: outbox replay after a restart, dead letters."""

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.devstack import ServiceProcess
from shared.topics import Topic
from tests.support.complaints import signed_post, web_complaint
from tests.support.events import EventTap
from tests.support.infra import free_port
from tests.support.stack import Stack

pytestmark = pytest.mark.slow


async def test_accepted_complaint_survives_restart_before_publishing(
    migrated_env: dict[str, str], broker_address: str, artifacts_dir: Path
) -> None:
    port = free_port()
    log = artifacts_dir / "outbox-replay-intake.log"
    # First life: the broker address leads nowhere, so the event can only wait in the outbox.
    offline = ServiceProcess("intake", port, {**migrated_env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"},
                             log)
    offline.start()
    try:
        await _wait_alive(offline.url)
        body = web_complaint()
        with httpx.Client(timeout=10) as client:
            accepted = signed_post(client, offline.url, "web", body)
        assert accepted.status_code == 202
        complaint_id = accepted.json()["complaint_id"]
    finally:
        offline.stop(sig=9)

    async with EventTap(broker_address, [str(Topic.COMPLAINTS)], from_beginning=True) as tap:
        assert not [e for e in tap.events if e.subject == complaint_id]
        online = ServiceProcess("intake", port, migrated_env, log)
        online.start()
        try:
            found = await tap.wait_for(lambda e: e.subject == complaint_id, timeout=30)
        finally:
            online.stop()
    assert found[0].data["customer_id"] == body["customer_id"]


async def _wait_alive(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(200):
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never came up")


async def test_poison_event_goes_to_dead_letter_and_consumer_continues(stack: Stack, broker_address: str) -> None:
    poison_key = f"poison-{uuid.uuid4().hex[:6]}".encode()
    async with EventTap(broker_address, from_beginning=False) as tap:
        producer = AIOKafkaProducer(bootstrap_servers=broker_address)
        await producer.start()
        try:
            headers = [("ce_type", b"complaint.received.v1"), ("ce_id", uuid.uuid4().hex.encode()),
                       ("ce_source", b"/test"), ("ce_correlationid", b"poison"), ("ce_specversion", b"1.0")]
            await producer.send_and_wait(str(Topic.COMPLAINTS), b"{not json", key=poison_key, headers=headers)
            bad_data = b'{"complaint_id": 1}'
            await producer.send_and_wait(str(Topic.COMPLAINTS), bad_data, key=poison_key, headers=headers)
        finally:
            await producer.stop()
        body = web_complaint(customer_id=poison_key.decode())
        with httpx.Client(timeout=10) as client:
            complaint_id = signed_post(client, stack.url("intake"), "web", body).json()["complaint_id"]

        routed = await tap.wait_for(lambda e: e.type == "case.routed.v1" and e.correlationid == complaint_id)
        def dead_letters() -> list:
            return [
                i for i in tap.items
                if i.topic == str(Topic.DEAD_LETTER) and i.key == poison_key.decode()
                and i.headers.get("dlq_consumer") == "redress-routing"
            ]

        deadline = asyncio.get_running_loop().time() + 10
        while len(dead_letters()) < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        dead = dead_letters()
    assert routed
    assert len(dead) == 2
    assert "not JSON" in dead[0].headers["dlq_error"]
    assert "data invalid" in dead[1].headers["dlq_error"]
    assert dead[0].headers["dlq_source_topic"] == str(Topic.COMPLAINTS)
