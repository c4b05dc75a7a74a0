"""Reading the event streams as an observer: no consumer group, nothing committed.

Used by the operator CLI, the web console and the tests to watch every topic live or from the
beginning. Messages that are not valid events are yielded with their error rather than hidden.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from shared.envelope import Envelope, MalformedEvent, from_kafka
from shared.topics import EVENT_TOPICS


@dataclass
class StreamItem:
    """One message of a watched topic: the event, or the reason it is not one."""

    topic: str
    partition: int
    offset: int
    envelope: Envelope | None
    error: str | None
    headers: dict[str, str]
    key: str | None
    value: bytes | None


def to_item(record: ConsumerRecord) -> StreamItem:
    """Decode one record."""
    headers = {k: (v or b"").decode("utf-8", errors="replace") for k, v in (record.headers or [])}
    key = record.key.decode("utf-8", errors="replace") if record.key else None
    try:
        env, error = from_kafka(record.key, record.value, record.headers), None
    except MalformedEvent as exc:
        env, error = None, str(exc)
    return StreamItem(record.topic, record.partition, record.offset, env, error, headers, key, record.value)


class EventStream:
    """Watches topics; start with ``from_beginning`` to replay what the broker still holds."""

    def __init__(
        self,
        bootstrap_servers: str,
        topics: list[str] | None = None,
        *,
        from_beginning: bool = False,
        fetch_max_wait_ms: int = 10,
    ) -> None:
        self.topics = topics or [str(t) for t in EVENT_TOPICS]
        self.consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            fetch_max_wait_ms=fetch_max_wait_ms,
            metadata_max_age_ms=2_000,
        )

    async def start(self) -> None:
        """Connect and take positions on every partition."""
        await self.consumer.start()
        # Resolve positions now, so events produced after start() are not missed with "latest".
        for tp in self.consumer.assignment():
            await self.consumer.position(tp)

    async def stop(self) -> None:
        """Disconnect."""
        await self.consumer.stop()

    async def __aenter__(self) -> "EventStream":
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def items(self, timeout_ms: int = 200) -> AsyncIterator[list[StreamItem]]:
        """Batches of decoded messages; an empty batch when nothing arrived within ``timeout_ms``."""
        while True:
            batches = await self.consumer.getmany(timeout_ms=timeout_ms)
            yield [to_item(r) for records in batches.values() for r in records]
