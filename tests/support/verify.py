"""End-state checks for fault tests: every effect happened exactly once, nothing stuck in an outbox."""

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable

import asyncpg
import httpx

from shared.envelope import Envelope
from shared.events.vocabulary import Role
from tests.support.events import EventTap
from tests.support.stack import SERVICES, Stack, operator_token


def effects_by(tap: EventTap, event_type: str, key: Callable[[Envelope], str]) -> dict[str, set[str]]:
    """Distinct event ids of one type grouped by ``key``: two ids for one key is a duplicated effect."""
    groups: dict[str, set[str]] = defaultdict(set)
    for env in tap.events:
        if env.type == event_type:
            groups[key(env)].add(env.id)
    return groups


async def wait_effects_once(
    tap: EventTap, event_type: str, key: Callable[[Envelope], str], expected: set[str], timeout: float = 90
) -> dict[str, Envelope]:
    """Wait until every expected key has its effect; then demand exactly one per key and none unexpected."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        groups = effects_by(tap, event_type, key)
        if expected <= set(groups):
            break
        await asyncio.sleep(0.2)
    groups = effects_by(tap, event_type, key)
    missing = expected - set(groups)
    assert not missing, f"{len(missing)} of {len(expected)} never got {event_type}: {sorted(missing)[:5]}"
    duplicated = {k: ids for k, ids in groups.items() if k in expected and len(ids) > 1}
    assert not duplicated, f"{event_type} happened more than once for {len(duplicated)} keys: {list(duplicated)[:3]}"
    latest = {}
    for env in tap.events:
        if env.type == event_type and key(env) in expected:
            latest[key(env)] = env
    return latest


def resolve_all(stack: Stack, case_ids: list[str], give_up_after: float = 120) -> None:
    """Resolve every case through routing's API, retrying like an operator's client would."""
    headers = {"Authorization": f"Bearer {operator_token(Role.SUPERVISOR, 'fault-test')}"}
    with httpx.Client(timeout=5, headers=headers) as client:
        for case_id in case_ids:
            deadline = time.monotonic() + give_up_after
            while True:
                try:
                    response = client.post(f"{stack.url('routing')}/v1/cases/{case_id}/resolve",
                                           json={"resolution_code": "fixed", "first_handling": True})
                    if response.status_code in (200, 409):
                        break
                    assert response.status_code in (429, 502, 503), response.text
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"could not resolve {case_id}"
                time.sleep(0.2)


async def outbox_backlogs(database_url: str) -> dict[str, int]:
    """Unpublished events per service schema."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    try:
        return {s: await conn.fetchval(f"SELECT count(*) FROM {s}.outbox WHERE published_at IS NULL")
                for s in SERVICES}
    finally:
        await conn.close()


async def wait_outboxes_empty(database_url: str, timeout: float = 60) -> None:
    """Every service's outbox drains."""
    deadline = time.monotonic() + timeout
    backlog = await outbox_backlogs(database_url)
    while any(backlog.values()) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        backlog = await outbox_backlogs(database_url)
    assert not any(backlog.values()), f"events stuck in outboxes: {backlog}"


def consumed_topics(service: str) -> list[str]:
    """The topics a service's consumer group reads, from the service's own spec."""
    import importlib

    spec = importlib.import_module(f"services.{service}.app").spec
    return [str(t) for t in spec.consumes]


async def wait_groups_caught_up(bootstrap: str, services: list[str], timeout: float = 90) -> None:
    """Wait until each service's consumer group committed every partition it reads up to its end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await probe.start()
    try:
        await probe.topics()
        reads = {
            f"redress-{s}": [TopicPartition(t, p) for t in consumed_topics(s)
                             for p in sorted(probe.partitions_for_topic(t) or {0})]
            for s in services
        }
        deadline = time.monotonic() + timeout
        behind: dict[str, int] = {}
        while time.monotonic() < deadline:
            behind = {}
            for group, partitions in reads.items():
                ends = await probe.end_offsets(partitions)
                reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
                await reader.start()
                try:
                    for tp in partitions:
                        committed = await reader.committed(tp) or 0
                        if committed < ends[tp]:
                            behind[f"{group}:{tp.topic}[{tp.partition}]"] = ends[tp] - committed
                finally:
                    await reader.stop()
            if not behind:
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"consumer groups still behind: {behind}")
    finally:
        await probe.stop()
