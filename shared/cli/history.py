"""Reading what the broker holds, from the beginning up to the end as it was when the read started."""

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.cli.common import Progress, start_client
from shared.stream import StreamItem, to_item


async def read_history(bootstrap: str, topics: list[str], what: str = "reading events") -> list[StreamItem]:
    """Every message of ``topics`` up to their current end (progress on stderr for long reads)."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    await start_client(consumer, bootstrap)
    try:
        tps = list(consumer.assignment())
        end = await consumer.end_offsets(tps)
        begin = await consumer.beginning_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > begin[tp]}
        progress = Progress(what, sum(end[tp] - begin[tp] for tp in tps))
        items: list[StreamItem] = []
        while remaining:
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                items += [to_item(r) for r in records if r.offset < end[tp]]
            await _drop_finished(consumer, remaining, end)
            progress.update(len(items))
        progress.done()
        return items
    finally:
        await consumer.stop()


async def _drop_finished(consumer: AIOKafkaConsumer, remaining: set[TopicPartition], end: dict) -> None:  # type: ignore[type-arg]
    # Positions rather than the last offset seen: transaction markers leave gaps before the end.
    for tp in list(remaining):
        if await consumer.position(tp) >= end[tp]:
            remaining.discard(tp)
