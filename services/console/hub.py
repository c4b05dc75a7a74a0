"""The live stream: one broker reader per console process, fanned out to every browser.

One ``EventStream`` watches every topic (and the dead-letter topic) without a consumer group. Each
event gets a sequence number and goes into a ring of recent events and into the queue of every
subscriber whose filters it matches. Memory is bounded everywhere: the ring, each subscriber's
queue (a slow browser loses its oldest events and is told how many), and the per-complaint facts.
A browser that reconnects sends the last id it saw and gets what it missed from the ring.
"""

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from prometheus_client import Counter, Gauge

from services.console.filters import ChainBook, LiveEvent, StreamFilter, to_live
from services.console.settings import Settings
from shared.stream import EventStream
from shared.topics import EVENT_TOPICS, Topic

log = logging.getLogger(__name__)
STREAM_CLIENTS = Gauge("redress_console_stream_clients", "Browsers connected to the live stream")
STREAM_DROPPED = Counter("redress_console_stream_dropped_total", "Events dropped for slow live-stream clients")
STREAM_EVENTS = Counter("redress_console_stream_events_total", "Messages read by the live-stream hub", ["kind"])


@dataclass
class Notice:
    """A message to a subscriber that is not an event (hub status, a gap)."""

    name: str
    data: dict[str, object]


@dataclass(eq=False)
class Subscription:
    """One browser's view of the stream: its filters and a bounded queue."""

    filter: StreamFilter
    maxsize: int
    queue: asyncio.Queue[LiveEvent | Notice] = field(init=False)
    dropped: int = 0

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.maxsize)

    def offer(self, item: LiveEvent | Notice) -> None:
        """Queue an item, dropping the oldest when the browser is not keeping up."""
        if isinstance(item, LiveEvent) and not self.filter.matches(item):
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
            STREAM_DROPPED.inc()
        self.queue.put_nowait(item)


@dataclass
class Replay:
    """What a new subscriber gets before live events: recent matches, and whether some were lost."""

    events: list[LiveEvent]
    missed: int = 0


class LiveHub:
    """Reads the broker and fans events out to subscribers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.epoch = secrets.token_hex(4)
        self.seq = 0
        self.recent: deque[LiveEvent] = deque(maxlen=settings.stream_buffer_events)
        self.book = ChainBook()
        self.subscribers: set[Subscription] = set()
        self.status = "starting"
        self.error: str | None = None
        self.reading = False
        self.reader_error: str | None = None
        self.broker_error: str | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._stopping = False

    def last_id(self) -> str:
        """The id of the newest event (``<epoch>-<seq>``)."""
        return f"{self.epoch}-{self.seq}"

    def state(self) -> dict[str, object]:
        """The hub's status for pages and readiness."""
        return {"status": self.status, "error": self.error, "last_id": self.last_id(),
                "buffered": len(self.recent), "clients": len(self.subscribers)}

    def _update_status(self) -> None:
        """Recompute the status from the reader and the broker check; tell browsers when it changed."""
        if self._stopping:
            status, error = "stopped", None
        elif self.reading and not self.broker_error:
            status, error = "live", None
        else:
            status = "reconnecting" if (self.reader_error or self.broker_error) else "starting"
            error = self.broker_error or self.reader_error
        if (status, error) == (self.status, self.error):
            return
        self.status, self.error = status, error
        notice = Notice("status", self.state())
        for sub in self.subscribers:
            sub.offer(notice)

    def publish(self, event: LiveEvent) -> None:
        """Keep an event in the ring and hand it to every matching subscriber."""
        self.recent.append(event)
        STREAM_EVENTS.labels(kind=event.kind).inc()
        for sub in self.subscribers:
            sub.offer(event)

    def subscribe(self, flt: StreamFilter, last_event_id: str | None, backlog: int) -> tuple[Subscription, Replay]:
        """Register a subscriber and say what it missed (after ``last_event_id``) or the recent backlog."""
        sub = Subscription(flt, self.settings.stream_client_queue)
        replay = self._replay(flt, last_event_id, backlog)
        self.subscribers.add(sub)
        STREAM_CLIENTS.set(len(self.subscribers))
        return sub, replay

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscriber."""
        self.subscribers.discard(sub)
        STREAM_CLIENTS.set(len(self.subscribers))

    def _replay(self, flt: StreamFilter, last_event_id: str | None, backlog: int) -> Replay:
        epoch, _, seq_text = (last_event_id or "").partition("-")
        if epoch == self.epoch and seq_text.isdigit():
            after = int(seq_text)
            oldest = self.recent[0].seq if self.recent else self.seq + 1
            missed = max(0, oldest - after - 1)
            return Replay([e for e in self.recent if e.seq > after and flt.matches(e)], missed)
        matching = [e for e in self.recent if flt.matches(e)]
        return Replay(matching[-backlog:] if backlog else [])

    def stop(self) -> None:
        """Ask ``run`` to finish."""
        self._stopping = True

    def close_subscribers(self) -> None:
        """Tell every browser to reconnect (elsewhere, or after the restart): the process is stopping."""
        notice = Notice("closing", {"reason": "the console is restarting"})
        for sub in list(self.subscribers):
            if sub.queue.full():
                sub.queue.get_nowait()
            sub.queue.put_nowait(notice)

    async def run(self) -> None:
        """Read the broker until stopped, reconnecting (from where it stopped) after failures."""
        backoff = 0.5
        while not self._stopping:
            try:
                await self._read_once()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.reading, self.reader_error = False, f"{type(exc).__name__}: {exc}"
                self._update_status()
                log.warning("live stream interrupted, reconnecting in %.1fs: %s", backoff, exc)
            if not self._stopping:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        self._update_status()

    async def watch_broker(self, check: Callable[[], Awaitable[None]], interval: float = 3.0) -> None:
        """Ask the broker for metadata every ``interval``: a reader waiting on a vanished broker does not
        fail by itself, so this is how the page learns the stream is not live."""
        while not self._stopping:
            try:
                await check()
                self.broker_error = None
            except Exception as exc:
                self.broker_error = f"broker unavailable: {type(exc).__name__}"
            self._update_status()
            await asyncio.sleep(interval)

    async def _read_once(self) -> None:
        topics = [*map(str, EVENT_TOPICS), str(Topic.DEAD_LETTER)]
        stream = EventStream(self.settings.bootstrap_servers, topics,
                             fetch_max_wait_ms=self.settings.stream_fetch_max_wait_ms)
        await stream.start()
        try:
            for tp, offset in self._positions.items():
                if tp in stream.consumer.assignment():
                    stream.consumer.seek(tp, offset)
            self.reading, self.reader_error = True, None
            self._update_status()
            async for batch in stream.items(timeout_ms=500):
                for item in batch:
                    self.seq += 1
                    self.publish(to_live(item, self.seq, self.book))
                    self._positions[TopicPartition(item.topic, item.partition)] = item.offset + 1
                if self._stopping:
                    return
        finally:
            self.reading = False
            with contextlib.suppress(Exception):
                await stream.stop()
