"""The Kafka bus on aiokafka: an idempotent producer (acks=all) started lazily and rebuilt after failures."""

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from shared.envelope import Envelope, to_kafka
from shared.settings import ServiceSettings
from shared.tracing import publishing

log = logging.getLogger(__name__)
KafkaMessage = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]


class KafkaBus:
    """Owns one producer; publishing failures reset it so the next attempt reconnects."""

    def __init__(self, settings: ServiceSettings, client_id: str) -> None:
        self.settings = settings
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def producer(self) -> AIOKafkaProducer:
        """The started producer, creating it on first use."""
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.bootstrap_servers,
                    client_id=self.client_id,
                    enable_idempotence=True,
                    acks="all",
                    linger_ms=self.settings.kafka_linger_ms,
                    max_batch_size=128 * 1024,
                    request_timeout_ms=10_000,
                )
                try:
                    await producer.start()
                except Exception:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def send_batch(self, items: list[tuple[str, Envelope]]) -> None:
        """Send events in order and wait until the broker acknowledged every one."""
        with publishing() as traced:  # one PRODUCER span per event (when exported); the event carries it
            messages = [(topic, *to_kafka(traced(topic, env))) for topic, env in items]
            await self.send_messages(messages)

    async def send_messages(self, messages: list[KafkaMessage]) -> None:
        """Send ready (topic, key, value, headers) messages in order; wait for every acknowledgement."""
        producer = await self.producer()
        try:
            futures = [
                await producer.send(topic, value=value, key=key, headers=headers)
                for topic, key, value, headers in messages
            ]
            await asyncio.gather(*futures)
        except Exception:
            await self.reset()
            raise

    async def send_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        """Send one message as is (dead letters, re-publishing) and wait for the acknowledgement."""
        await self.send_messages([(topic, key, value, headers)])

    async def check(self, timeout: float = 2.0) -> None:
        """Raise unless the broker answers a metadata request."""
        producer = await asyncio.wait_for(self.producer(), timeout)
        await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout)

    async def reset(self) -> None:
        """Drop the producer; the next send creates a new one."""
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:
                log.info("producer stop failed: %s", exc)

    async def close(self) -> None:
        """Flush and stop the producer."""
        await self.reset()


def assignors(delay_ms: int) -> tuple[type, ...]:
    """Partition assignors; a delay lets every member's SyncGroup reach the embedded broker first.

    Only tests set a delay: the in-process broker answers the leader's SyncGroup before followers
    join (TOOLING.md). Production brokers need none.
    """
    if not delay_ms:
        return (RoundRobinPartitionAssignor,)

    class DelayedRoundRobin(RoundRobinPartitionAssignor):
        name = "roundrobin"

        @classmethod
        def assign(cls, cluster, members):  # type: ignore[no-untyped-def]
            time.sleep(delay_ms / 1000)
            return super().assign(cluster, members)

    return (DelayedRoundRobin,)
