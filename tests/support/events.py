"""Watching the broker from tests: collect events and wait for the ones a test expects."""

import asyncio
import time
from collections.abc import Callable

from shared.envelope import Envelope
from shared.stream import EventStream, StreamItem
from shared.topics import EVENT_TOPICS, Topic


class EventTap:
    """Collects every message of the watched topics in the background."""

    def __init__(self, bootstrap: str, topics: list[str] | None = None, from_beginning: bool = True) -> None:
        self.stream = EventStream(bootstrap, topics or [*map(str, EVENT_TOPICS), str(Topic.DEAD_LETTER)],
                                  from_beginning=from_beginning)
        self.items: list[StreamItem] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "EventTap":
        await self.stream.start()
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task:
            self._task.cancel()
        await self.stream.stop()

    async def _collect(self) -> None:
        async for batch in self.stream.items(timeout_ms=50):
            self.items.extend(batch)

    @property
    def events(self) -> list[Envelope]:
        """Every valid event seen so far."""
        return [i.envelope for i in self.items if i.envelope is not None]

    async def wait_for(
        self, predicate: Callable[[Envelope], bool], timeout: float = 20.0, count: int = 1
    ) -> list[Envelope]:
        """Wait until ``count`` events match; raise AssertionError with what was seen on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events if predicate(e)]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        seen = [(e.type, e.subject) for e in self.events[-20:]]
        raise AssertionError(f"expected {count} matching events within {timeout}s; last seen: {seen}")

    async def wait_for_item(self, predicate: Callable[[StreamItem], bool], timeout: float = 20.0) -> StreamItem:
        """Wait for any message (valid or not) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in self.items:
                if predicate(item):
                    return item
            await asyncio.sleep(0.05)
        raise AssertionError(f"no matching message within {timeout}s")
