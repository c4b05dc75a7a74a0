"""Server-Sent Events framing of the live stream for one browser."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from services.console.hub import LiveHub, Notice, Replay, Subscription


def frame(data: str, event: str | None = None, event_id: str | None = None) -> str:
    """One SSE frame; every line of ``data`` becomes a ``data:`` line."""
    head = (f"id: {event_id}\n" if event_id else "") + (f"event: {event}\n" if event else "")
    return head + "".join(f"data: {line}\n" for line in data.splitlines() or [""]) + "\n"


async def event_stream(hub: LiveHub, sub: Subscription, replay: Replay, expires_at: datetime, heartbeat: float,
                       hello: dict[str, Any]) -> AsyncIterator[str]:
    """Frames for one browser: hello, what it missed, then live events until its session expires.

    A keep-alive comment every ``heartbeat`` seconds keeps proxies from closing an idle stream.
    The subscription is dropped however the stream ends (the browser left, the session expired,
    the console is stopping).
    """
    try:
        yield "retry: 3000\n\n"
        yield frame(json.dumps(hello), "hello")
        if replay.missed:
            yield frame(json.dumps({"missed": replay.missed}), "gap")
        for event in replay.events:
            yield frame(event.to_json(), event_id=f"{hub.epoch}-{event.seq}")
        while True:
            left = (expires_at - datetime.now(UTC)).total_seconds()
            if left <= 0:
                yield frame(json.dumps({"reason": "session expired; sign in again"}), "expired")
                return
            try:
                item = await asyncio.wait_for(sub.queue.get(), min(heartbeat, left))
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if sub.dropped:
                yield frame(json.dumps({"missed": sub.dropped, "reason": "the browser fell behind"}), "gap")
                sub.dropped = 0
            if isinstance(item, Notice):
                yield frame(json.dumps(item.data, default=str), item.name)
                if item.name == "closing":
                    return
            else:
                yield frame(item.to_json(), event_id=f"{hub.epoch}-{item.seq}")
    finally:
        hub.unsubscribe(sub)
