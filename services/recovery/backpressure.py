"""Backpressure for the incident fan-out: wait while the consumers of its events fall too far behind.

An incident issues compensations faster than loyalty may grant them. A real Kafka keeps the backlog,
but loyalty's other work (points of resolved cases, tier changes) then queues behind it; the embedded
broker drops what a consumer falls more than a few megabytes behind on. So the fan-out reads the lag
of the groups that consume compensation events, at most every ``incident_lag_check_seconds``, and
issues nothing while one of them is more than ``incident_max_consumer_lag`` events behind. When the
lag cannot be read, the fan-out goes on: the guard never stops an incident by itself failing.
"""

import logging
import time

from shared.lag import GroupLagReader
from shared.metrics import FAN_OUT_PAUSED

log = logging.getLogger(__name__)


def over_limit(behind: dict[str, int], limit: int) -> dict[str, int]:
    """The groups more than ``limit`` events behind (none when the limit is 0: no backpressure)."""
    return {group: lag for group, lag in behind.items() if limit and lag > limit}


class ConsumerBackpressure:
    """Whether the fan-out should wait; the lag is read at most once per interval."""

    def __init__(self, reader: GroupLagReader, limit: int, every_seconds: float) -> None:
        self.reader = reader
        self.limit = limit
        self.every_seconds = every_seconds
        self._read_at = float("-inf")
        self._holding = False

    async def holding(self) -> bool:
        """True while a consumer group is more than the limit behind (as of the last read)."""
        if not self.limit:
            return False
        now = time.monotonic()
        if now - self._read_at < self.every_seconds:
            return self._holding
        self._read_at = now
        over = over_limit(await self._behind(), self.limit)
        if over and not self._holding:
            log.warning("incident fan-out paused: %s behind on %s (limit %d events)",
                        ", ".join(f"{g} {n} events" for g, n in over.items()), self.reader.topic, self.limit)
        elif self._holding and not over:
            log.info("incident fan-out resumed: consumers of %s caught up", self.reader.topic)
        self._holding = bool(over)
        FAN_OUT_PAUSED.set(int(self._holding))
        return self._holding

    async def _behind(self) -> dict[str, int]:
        try:
            return await self.reader.behind()
        except Exception as exc:
            log.info("cannot read the lag of %s (%s); the incident fan-out goes on", self.reader.groups, exc)
            await self.reader.close()
            return {}

    async def close(self) -> None:
        """Stop the lag reader's clients."""
        await self.reader.close()
