"""Sign-in: checking a password against the operator list, and locking out password guessing."""

import time
from collections import OrderedDict, deque

from services.console.passwords import hash_password, verify_password
from services.console.settings import OperatorAccount

# Unknown usernames are checked against this hash too, so a wrong name costs as long as a wrong password.
_DECOY_HASH = hash_password("decoy-password-never-valid")


def authenticate(accounts: dict[str, OperatorAccount], username: str, password: str) -> OperatorAccount | None:
    """The operator whose password this is, else None (same work for unknown names and wrong passwords)."""
    account = accounts.get(username.strip().lower())
    valid = verify_password(password, account.password_hash if account else _DECOY_HASH)
    return account if valid and account else None


class SignInGuard:
    """Counts failed sign-ins per key (username and client address) in a sliding window.

    After ``max_failures`` failures within ``window_seconds`` the key is locked until the oldest
    failure leaves the window. Memory is bounded: the least recently failed keys are forgotten.
    """

    def __init__(self, max_failures: int, window_seconds: float, max_keys: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def locked_for(self, key: str, now: float | None = None) -> float:
        """Seconds until ``key`` may try again; 0 when it may try now."""
        now = time.monotonic() if now is None else now
        times = self._recent(key, now)
        if len(times) < self.max_failures:
            return 0.0
        return self.window - (now - times[0])

    def failed(self, key: str, now: float | None = None) -> None:
        """Record one failed attempt."""
        now = time.monotonic() if now is None else now
        times = self._recent(key, now)
        times.append(now)
        while len(times) > self.max_failures:
            times.popleft()
        self._failures.pop(key, None)
        self._failures[key] = times
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        """Forget the failures of a key after a good sign-in."""
        self._failures.pop(key, None)
