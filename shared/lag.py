"""How far consumer groups are behind: lag per partition, and a reader a service keeps open to watch them.

Lag is a partition's end offset minus the group's committed offset. A topic counts as consumed by a
group when the group committed on any of its partitions; its partitions without a commit yet are
counted from their beginning (consumers start at the earliest offset).
"""

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.bus import KafkaBus

log = logging.getLogger(__name__)


@dataclass
class LagRow:
    """One partition of one group."""

    group: str
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int


def lag_rows(
    group: str, tps: Sequence[TopicPartition], committed: dict[TopicPartition, int | None],
    begin: dict[TopicPartition, int], end: dict[TopicPartition, int], *, consumed_only: bool = True,
) -> list[LagRow]:
    """The lag rows of one group: of the topics it committed on, or with ``consumed_only=False`` of every
    partition in ``tps`` (uncommitted ones from the beginning)."""
    consumed = {tp.topic for tp, offset in committed.items() if offset is not None}
    rows = []
    for tp in tps:
        if consumed_only and tp.topic not in consumed:
            continue
        offset = committed[tp]
        start = offset if offset is not None else begin[tp]
        rows.append(LagRow(group, tp.topic, tp.partition, offset, end[tp], max(0, end[tp] - start)))
    return rows


class GroupLagReader:
    """Reads how far groups are behind on one topic, with one client per group kept open between reads."""

    def __init__(self, bus: KafkaBus, groups: Sequence[str], topic: str) -> None:
        self.bus = bus
        self.groups = list(groups)
        self.topic = topic
        self._clients: dict[str, AIOKafkaConsumer] = {}

    async def behind(self) -> dict[str, int]:
        """Events each group has yet to consume on the topic; groups that never consumed it are left out."""
        producer = await self.bus.producer()
        tps = [TopicPartition(self.topic, p) for p in sorted(await producer.partitions_for(self.topic))]
        totals = {}
        for group in self.groups:
            client = await self._client(group)
            committed = {tp: await client.committed(tp) for tp in tps}
            uncommitted = [tp for tp, offset in committed.items() if offset is None]
            begin = await client.beginning_offsets(uncommitted) if uncommitted else {}
            rows = lag_rows(group, tps, committed, begin, await client.end_offsets(tps))
            if rows:
                totals[group] = sum(row.lag for row in rows)
        return totals

    async def _client(self, group: str) -> AIOKafkaConsumer:
        client = self._clients.get(group)
        if client is None:
            # Never subscribed: it reads the group's offsets without joining the group.
            client = AIOKafkaConsumer(bootstrap_servers=self.bus.settings.bootstrap_servers, group_id=group,
                                      enable_auto_commit=False, client_id=f"{self.bus.client_id}-lag")
            await client.start()
            self._clients[group] = client
        return client

    async def close(self) -> None:
        """Stop the clients (the next read starts new ones)."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.stop()
