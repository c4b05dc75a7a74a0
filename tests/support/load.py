"""A bounded stream of complaints submitted the way a channel integration does, with retries."""

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tests.support.complaints import signed_post, web_complaint


@dataclass
class ComplaintStream:
    """Submits ``count`` complaints at ``rate`` per second from a thread.

    Each complaint is retried with the same body and Idempotency-Key on 429, 503 and connection
    errors until accepted or ``give_up_after`` seconds pass, so a test can count exactly what was
    accepted and demand that each is processed once.
    """

    intake_url: Callable[[], str]
    count: int = 200
    rate: float = 40.0
    give_up_after: float = 90.0
    accepted: dict[str, str] = field(default_factory=dict)
    statuses: Counter[int | str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def start(self) -> "ComplaintStream":
        """Begin submitting in the background."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float = 300) -> None:
        """Wait until every complaint was accepted or given up."""
        assert self._thread
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "complaint stream did not finish"

    @property
    def done(self) -> int:
        """Complaints accepted or given up so far."""
        return len(self.accepted) + len(self.failed)

    def _run(self) -> None:
        interval = 1.0 / self.rate
        with httpx.Client(timeout=5) as client:
            for i in range(self.count):
                started = time.monotonic()
                # A distinct customer per message: with the default text's order number, two messages of one
                # customer are one complaint and its follow-up (four hex digits collided in about 1 run in 200).
                customer = f"load-{i % 50}-{uuid.uuid4().hex[:12]}"
                self._submit_until_accepted(client, web_complaint(customer_id=customer))
                time.sleep(max(0.0, interval - (time.monotonic() - started)))

    def _submit_until_accepted(self, client: httpx.Client, body: dict[str, object]) -> None:
        key = str(uuid.uuid4())
        deadline = time.monotonic() + self.give_up_after
        while time.monotonic() < deadline:
            try:
                response = signed_post(client, self.intake_url(), "web", body, idempotency_key=key)
            except httpx.HTTPError as exc:
                self.statuses[type(exc).__name__] += 1
                time.sleep(0.2)
                continue
            self.statuses[response.status_code] += 1
            if response.status_code in (200, 201, 202):
                self.accepted[str(body["external_ref"])] = response.json()["complaint_id"]
                return
            if response.status_code in (429, 503, 502, 504):
                time.sleep(min(2.0, float(response.headers.get("retry-after", "0.2"))))
                continue
            raise AssertionError(f"complaint rejected with {response.status_code}: {response.text}")
        self.failed.append(str(body["external_ref"]))
