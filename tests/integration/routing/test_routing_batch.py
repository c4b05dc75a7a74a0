"""Routing's consumer handles a fetch of complaint events as one run, with the same effects as one by one.

The service's own handlers run under the shared consumer against a migrated PostgreSQL schema: the
same events once as one fetch and once each in a fetch of its own must leave the same cases,
history and timers and publish the same events in the same order. A run's statements do not grow
with the number of complaints in it.
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import create_async_engine

from services.routing.handlers import make_handlers
from services.routing.models import case_history, cases, customer_tiers, delivery
from services.routing.policy import load_policy
from services.routing.settings import Settings
from shared.consumer import EventConsumer
from shared.db import Database, make_engine
from shared.envelope import new_event, to_kafka
from shared.events import EventData
from shared.events.complaints import ComplaintFollowedUp, ComplaintReceived
from shared.events.loyalty import TierChanged
from shared.events.vocabulary import Channel, CustomerTier
from shared.outbox import Emitter
from tests.integration.routing.conftest import complaint
from tests.support.infra import throwaway_database
from tests.support.stack import migrate_all, stack_env


@pytest.fixture
def database_urls(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two migrated routing schemas: one for the fetch handled as a run, one for one by one."""
    with throwaway_database() as first, throwaway_database() as second:
        for url in (first, second):
            migrate_all(stack_env(url, "127.0.0.1:9", tmp_path), "routing")
        yield first, second


@asynccontextmanager
async def routing_consumer(url: str) -> AsyncIterator[EventConsumer]:
    """Routing's handlers under the shared consumer, on ``url`` (no broker: nothing is dead-lettered)."""
    settings = Settings(database_url=url, kafka_bootstrap_servers="127.0.0.1:9")
    db = Database(make_engine(settings), delivery, settings.db_schema)
    consumer = EventConsumer(service="routing", settings=settings, db=db, bus=None, emitter=Emitter(db, "/test"),
                             handlers=make_handlers(load_policy()), topics=[])  # type: ignore[arg-type]
    try:
        yield consumer
    finally:
        await db.dispose()


def records(events: list[EventData]) -> list[ConsumerRecord]:
    """The events as the consumer fetches them (one partition, in order)."""
    out = []
    for offset, data in enumerate(events):
        subject = getattr(data, "complaint_id", None) or data.partition_key()
        key, value, headers = to_kafka(new_event(data, source="/tests", subject=subject, correlation_id=subject))
        out.append(ConsumerRecord(topic=str(data.topic), partition=0, offset=offset, timestamp=0, timestamp_type=0,
                                  key=key, value=value, checksum=None, serialized_key_size=len(key or b""),
                                  serialized_value_size=len(value), headers=headers))
    return out


def follow_up(received: ComplaintReceived, count: int = 1) -> ComplaintFollowedUp:
    """The customer writes again about ``received``."""
    return ComplaintFollowedUp(complaint_id=received.complaint_id, customer_id=received.customer_id,
                               channel=Channel.WEB, received_at=datetime.now(UTC), text="Any news?",
                               follow_up_count=count)


def mixed_fetches() -> list[list[EventData]]:
    """Two fetches: new complaints, follow-ups (of a complaint in the same fetch, of one stored by the
    earlier fetch, of none), a complaint delivered twice under two event ids, and a tier change
    between two of a customer's complaints."""
    vip = f"cust-{uuid.uuid4().hex[:8]}"
    first, second, third = complaint(), complaint(departments=("billing", "logistics")), complaint(customer_id=vip)
    later, newcomer = complaint(customer_id=vip, cues=("legal_threat",)), complaint()
    tier = TierChanged(customer_id=vip, from_tier=None, to_tier=CustomerTier.HIGH_VALUE, changed_at=datetime.now(UTC))
    return [
        [first, second, follow_up(first), third, second, follow_up(complaint()), tier, later, follow_up(second),
         follow_up(first, 2), *(complaint() for _ in range(5))],
        [follow_up(third), follow_up(later), newcomer, follow_up(third, 2), follow_up(newcomer)],
    ]


async def outcome(url: str) -> dict[str, Any]:
    """What routing stored and published, keyed by complaint, without ids and clock times."""
    engine = create_async_engine(url, connect_args={"server_settings": {"search_path": "routing"}})
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(cases))).mappings().all()
            by_case = {row["id"]: row["complaint_id"] for row in rows}
            state = {
                row["complaint_id"]: (row["state"], row["severity"], row["initial_severity"], row["level"],
                                      row["queue"], row["customer_tier"], row["escalations"], row["follow_ups"])
                for row in rows
            }
            history = (await conn.execute(sa.select(case_history.c.case_id, case_history.c.kind, case_history.c.name)
                                          .order_by(case_history.c.id))).all()
            timers = delivery.timers
            pending = (await conn.execute(sa.select(timers.c.payload).where(timers.c.fired_at.is_(None)))).scalars()
            outbox = delivery.outbox
            published = (await conn.execute(sa.select(outbox.c.event_type, outbox.c.envelope)
                                            .order_by(outbox.c.id))).all()
    finally:
        await engine.dispose()
    steps: dict[str, list[tuple[str, str]]] = {}
    for case_id, kind, name in history:
        steps.setdefault(by_case[case_id], []).append((kind, name))
    clocks: dict[str, set[tuple[str, str]]] = {}
    for payload in pending:
        clocks.setdefault(by_case[payload["case_id"]], set()).add((payload["clock"], payload["kind"]))
    events = [(event_type, json.loads(envelope)["correlationid"]) for event_type, envelope in published]
    return {"cases": state, "history": steps, "timers": clocks, "events": events}


def test_a_fetch_handled_as_a_run_has_the_effects_of_one_event_at_a_time(database_urls: tuple[str, str]) -> None:
    fetches = [records(events) for events in mixed_fetches()]

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        as_run, one_by_one = database_urls
        async with routing_consumer(as_run) as consumer:
            for fetch in fetches:
                await consumer.process(fetch)
        async with routing_consumer(one_by_one) as consumer:
            for record in (record for fetch in fetches for record in fetch):
                await consumer.process([record])
        return await outcome(as_run), await outcome(one_by_one)

    run, single = asyncio.run(scenario())
    assert run == single
    assert len(run["cases"]) == 10  # the duplicate opened nothing, the unknown complaint's follow-up neither
    # first and third were followed up twice, second, later and newcomer once
    assert sorted(c[6] for c in run["cases"].values()) == [0] * 5 + [1, 1, 1, 2, 2]
    assert [e for e, _ in run["events"]].count("case.routed.v1") == 10
    assert sum(c[5] == "high_value" for c in run["cases"].values()) == 1  # the tier change counted for later only


def test_a_runs_statements_do_not_grow_with_its_complaints(database_urls: tuple[str, str]) -> None:
    async def statements(batch: int) -> int:
        async with routing_consumer(database_urls[0]) as consumer:
            await consumer.process(records([complaint()]))  # statements prepared, pool warm
            counted: list[str] = []
            sa.event.listen(consumer.db.engine.sync_engine, "before_cursor_execute",
                            lambda *args: counted.append(args[2]))
            await consumer.process(records([complaint() for _ in range(batch)]))
            return len(counted)

    small, large = asyncio.run(statements(2)), asyncio.run(statements(40))
    assert small == large, (small, large)
    assert large <= 12  # BEGIN, inbox, tiers, cases, 3 inserts, outbox, NOTIFY, COMMIT and no more


def test_the_tier_projection_keeps_the_newest_change(database_urls: tuple[str, str]) -> None:
    customer, now = f"cust-{uuid.uuid4().hex[:8]}", datetime.now(UTC)

    def change(tier: CustomerTier, minutes_ago: int) -> TierChanged:
        return TierChanged(customer_id=customer, from_tier=None, to_tier=tier,
                           changed_at=now - timedelta(minutes=minutes_ago))

    async def projected(*changes: TierChanged) -> str:
        async with routing_consumer(database_urls[0]) as consumer:
            for event in changes:
                await consumer.process(records([event]))
            async with consumer.db.engine.connect() as conn:
                return str(await conn.scalar(sa.select(customer_tiers.c.tier)
                                             .where(customer_tiers.c.customer_id == customer)))

    assert asyncio.run(projected(change(CustomerTier.HIGH_VALUE, 5))) == "high_value"
    assert asyncio.run(projected(change(CustomerTier.POTENTIAL, 10))) == "high_value"  # older: ignored
    assert asyncio.run(projected(change(CustomerTier.MID_VALUE, 1))) == "mid_value"
