"""Watches the topics and notes when each event arrived, keyed by type and correlation id.

Reads only the ``ce_type`` and ``ce_correlationid`` headers (plus the JSON value of the few types the
benchmark needs data from), so keeping up with the stack costs little CPU.
"""

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from shared.topics import EVENT_TOPICS, Topic

Callback = Callable[[str, str, dict[str, Any] | None, float], None]


class Observer:
    """Arrival times of events: ``arrivals[type][correlation id] = wall-clock seconds`` (first arrival)."""

    def __init__(self, bootstrap: str, want_data: frozenset[str] = frozenset(), fetch_max_wait_ms: int = 5) -> None:
        self.consumer = AIOKafkaConsumer(
            *[str(t) for t in EVENT_TOPICS], str(Topic.DEAD_LETTER),
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="latest", fetch_max_wait_ms=fetch_max_wait_ms, metadata_max_age_ms=2_000,
            max_partition_fetch_bytes=4 * 2**20,
        )
        self.want_data = want_data
        self.arrivals: dict[str, dict[str, float]] = defaultdict(dict)
        self.counts: dict[str, int] = defaultdict(int)
        self.last_arrival: dict[str, float] = {}  # when the latest event of each type arrived
        self.data: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.callbacks: list[Callback] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and take positions at the end of every partition."""
        await self.consumer.start()
        for tp in self.consumer.assignment():
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Disconnect."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.time()
            for records in batches.values():
                for record in records:
                    self._note(record.headers or [], record.value, now)

    def _note(self, headers: list[tuple[str, bytes]], value: bytes | None, now: float) -> None:
        event_type = correlation = ""
        for name, raw in headers:
            if name == "ce_type":
                event_type = raw.decode()
            elif name == "ce_correlationid":
                correlation = raw.decode()
        if not event_type:
            event_type = "dead-letter" if any(n == "dlq_error" for n, _ in headers) else "unknown"
        self.counts[event_type] += 1
        self.last_arrival[event_type] = now
        self.arrivals[event_type].setdefault(correlation, now)
        data = None
        if event_type in self.want_data and value:
            with contextlib.suppress(ValueError):
                data = json.loads(value)
                self.data[event_type].setdefault(correlation, data)
        for callback in self.callbacks:
            callback(event_type, correlation, data, now)

    def count(self, event_type: str) -> int:
        """How many events of a type arrived."""
        return self.counts.get(event_type, 0)

    async def wait_count(self, event_type: str, count: int, timeout: float) -> bool:
        """Wait until ``count`` events of a type arrived; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(event_type) >= count:
                return True
            await asyncio.sleep(0.05)
        return self.count(event_type) >= count
