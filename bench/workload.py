"""What the load generator sends: complaint bodies as channels send them, signed when intake wants it.

Factories are plain picklable objects: the generator process builds every request itself, with a
unique submission id per request and customers spread over many ids (so every partition works).
"""

import json
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.signing import signed_headers

TEXTS = (
    "My order 2024112300123 arrived broken and the box was crushed. I want a replacement.",
    "订单号：2024112300456 的商品坏了，客服一直没有回复，请尽快处理。",
    "Someone logged into my account and changed the phone number. I may lose money, please help!",
    "How do I set up the device? The manual does not match the app and support did not answer.",
    "The agent in the store was rude and refused to explain the refund policy to me.",
    "我的账户被盗了，余额少了500元，请马上冻结账户。",
)


def complaint_body(shape: str, serial: str, customer: str, index: int, run_id: str = "") -> dict[str, Any]:
    """One complaint body in the shape intake accepts (``legacy`` or ``webform``).

    Every customer has its own e-mail, phone and order, so intake's directory and follow-up matching
    see distinct customers with new complaints (not follow-ups of one customer's open complaint).
    """
    text = TEXTS[index % len(TEXTS)]
    if shape == "legacy":
        return {"customer_id": customer, "text": text, "external_ref": serial}
    return {
        "submission_id": serial,
        "customer_id": customer,
        "name": "Li Wei",
        "email": f"{customer}@example.com",
        "phone": f"+86138{(zlib.crc32(run_id.encode()) * 7919 + index) % 10**8:08d}",
        "subject": "Complaint about my order",
        "description": text,
        "order_ref": f"ORD-{run_id}-{index}",
        "locale": "zh-CN",
        "submitted_at": datetime.now(UTC).isoformat(),
    }


@dataclass
class RequestFactory:
    """Builds raw HTTP/1.1 requests; subclasses say what goes in them."""

    def next_request(self) -> bytes | None:
        """The next request's bytes, or None when the workload is used up."""
        raise NotImplementedError


def raw_request(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> bytes:
    """An HTTP/1.1 keep-alive request as bytes."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


@dataclass
class ComplaintFactory(RequestFactory):
    """Fresh complaints for one channel path, optionally signed and with an Idempotency-Key."""

    path: str
    shape: str = "webform"
    customers: int = 10_000_000
    key_id: str | None = None
    secret: str | None = None
    idempotency: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    count: int = 0

    def next_request(self) -> bytes:
        """A new complaint with a unique submission id."""
        self.count += 1
        serial = f"bench-{self.run_id}-{self.count}"
        customer = f"bench-cust-{self.run_id}-{self.count % self.customers}"
        data = complaint_body(self.shape, serial, customer, self.count, self.run_id)
        body = json.dumps(data, separators=(",", ":")).encode()
        headers: dict[str, str] = {}
        if self.key_id and self.secret:
            headers.update(signed_headers(self.key_id, self.secret, int(time.time()), body))
        if self.idempotency:
            headers["Idempotency-Key"] = serial
        return raw_request("POST", self.path, body, headers)


@dataclass
class ListFactory(RequestFactory):
    """A fixed list of requests (resolving known cases, reading queues), sent once each in order."""

    requests: list[bytes]
    index: int = 0

    def next_request(self) -> bytes | None:
        """The next request of the list."""
        if self.index >= len(self.requests):
            return None
        self.index += 1
        return self.requests[self.index - 1]


@dataclass
class CycleFactory(RequestFactory):
    """A fixed list of requests sent round and round (read endpoints)."""

    requests: list[bytes]
    index: int = 0

    def next_request(self) -> bytes:
        """The next request, wrapping around."""
        raw = self.requests[self.index % len(self.requests)]
        self.index += 1
        return raw
