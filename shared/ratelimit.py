"""Token-bucket rate limits per key (a channel key, an operator), answered with 429 and Retry-After.

Limits hold per process: with N replicas behind a Service the effective limit is N times the setting,
which ops size for (docs/deploy.md). Memory is bounded: the least recently seen keys are forgotten.
"""

import math
import time
from collections import OrderedDict

from shared.problems import ProblemError


class RateLimiter:
    """Allows ``rate`` requests per second per key with bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def retry_after(self, key: str, now: float | None = None) -> float:
        """Take one token for ``key``; 0 when allowed, else seconds until a token is available."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    def enforce(self, key: str, what: str) -> None:
        """Raise 429 problem+json with Retry-After when ``key`` is over its limit."""
        wait = self.retry_after(key)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ProblemError(
                429, "Too many requests", f"rate limit for {what} exceeded; retry in {seconds}s",
                code="rate-limited", headers={"Retry-After": str(seconds)},
            )
