"""What loyalty's integration tests share: publishing events, reading the service, moving time."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from sqlalchemy.ext.asyncio import create_async_engine

from services.loyalty.handlers import build_handlers
from services.loyalty.policy import LoyaltyPolicy
from services.loyalty.settings import Settings
from shared.bus import KafkaBus
from shared.consumer import BatchableHandler, EventConsumer, Handler
from shared.db import Database
from shared.envelope import Envelope, new_event, to_kafka
from shared.events import EVENT_TYPES, EventData
from shared.events.vocabulary import Role
from shared.outbox import Emitter
from shared.topics import Topic
from tests.support.events import EventTap
from tests.support.stack import Stack

T = TypeVar("T")


def new_id(prefix: str) -> str:
    """A unique id for this test run."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def now() -> datetime:
    """Timezone-aware UTC now."""
    return datetime.now(UTC)


@dataclass
class Bus:
    """A producer on loyalty's broker."""

    producer: AIOKafkaProducer
    bootstrap: str

    async def publish(self, data: EventData, *, correlation_id: str | None = None, event_id: str | None = None,
                      source: str = "/test") -> Envelope:
        """Publish one event in the CloudEvents Kafka binding, as its producing service would."""
        env = new_event(data, source=source, subject=None, correlation_id=correlation_id or new_id("corr"))
        if event_id:
            env = env.model_copy(update={"id": event_id})
        await self.send(env)
        return env

    async def send(self, env: Envelope) -> None:
        """Send a ready envelope (e.g. to redeliver it)."""
        from shared.events import EVENT_TYPES

        key, value, headers = to_kafka(env)
        await self.producer.send_and_wait(str(EVENT_TYPES[env.type].topic), value, key=key, headers=headers)

    def tap(self) -> EventTap:
        """Watch what loyalty publishes (and imports, and dead-letters) from now on."""
        topics = [str(Topic.LOYALTY), str(Topic.ORDERS), str(Topic.DEAD_LETTER)]
        return EventTap(self.bootstrap, topics, from_beginning=False)


@dataclass
class Loyalty:
    """The running loyalty service and its database."""

    stack: Stack
    env: dict[str, str]

    def client(self, role: Role | None = None, subject: str = "test-operator") -> httpx.Client:
        """An HTTP client, authenticated as an operator when `role` is given."""
        return self.stack.client("loyalty", role, subject)

    def view(self, customer_id: str, **params: Any) -> httpx.Response:
        """GET the customer's loyalty view (as an agent)."""
        with self.client(Role.AGENT) as client:
            return client.get(f"/v1/customers/{customer_id}/loyalty", params=params)

    async def sql(self, statement: str, **params: Any) -> list[Any]:
        """Run SQL in loyalty's schema (to move time forward, or to look where the API does not)."""
        engine = create_async_engine(
            self.env["DATABASE_URL"], connect_args={"server_settings": {"search_path": "loyalty"}}
        )
        try:
            async with engine.begin() as conn:
                result = await conn.execute(sa.text(statement), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()


async def eventually(probe: Callable[[], T | Awaitable[T]], timeout: float = 20.0) -> T:
    """Poll `probe` until it returns something truthy; fail with its last value otherwise."""
    deadline = time.monotonic() + timeout
    value: Any = None
    while time.monotonic() < deadline:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")


def view_when(loyalty: Loyalty, customer_id: str, check: Callable[[dict[str, Any]], bool]) -> Callable[[], Any]:
    """A probe returning the loyalty view once it exists and `check` holds."""

    def probe() -> dict[str, Any] | None:
        response = loyalty.view(customer_id)
        if response.status_code != 200:
            return None
        body = response.json()
        return body if check(body) else None

    return probe


def consumer_settings(env: dict[str, str]) -> Settings:
    """Loyalty's settings for a consumer driven by a test: no retries, so a failure shows at once."""
    return Settings(
        database_url=env["DATABASE_URL"], kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
        consumer_max_retries=0, consumer_retry_backoff_ms=1,
    )


def loyalty_consumer(
    db: Database, bus: KafkaBus, env: dict[str, str], policy: LoyaltyPolicy, *, batched: bool
) -> EventConsumer:
    """Loyalty's consumer without the service; ``batched=False`` keeps only the per-event forms."""
    handlers: dict[str, Handler] = build_handlers(policy)
    if not batched:
        handlers = {k: h.one if isinstance(h, BatchableHandler) else h for k, h in handlers.items()}
    return EventConsumer(service="loyalty", settings=consumer_settings(env), db=db, bus=bus,
                         emitter=Emitter(db, source="/redress/loyalty"), handlers=handlers, topics=[])


def consumer_record(env: Envelope, offset: int) -> ConsumerRecord:
    """An event as the consumer gets it from a fetch."""
    key, value, headers = to_kafka(env)
    topic = str(EVENT_TYPES[env.type].topic)
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key), len(value), headers)


async def feed(consumer: EventConsumer, events: list[Envelope], *, one_fetch: bool) -> None:
    """Hand events to the consumer as one fetch, or as one fetch each."""
    records = [consumer_record(env, offset) for offset, env in enumerate(events)]
    if one_fetch:
        await consumer.process(records)
        return
    for record in records:
        await consumer.process([record])
