"""Helpers of intake's service tests: signed requests, fresh payloads, downstream events."""

from __future__ import annotations

import copy
import json
import random
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from shared.envelope import new_event, to_kafka
from shared.events import EventData
from shared.signing import signed_headers

PAYLOADS = Path(__file__).resolve().parents[2] / "data" / "intake" / "payloads"
# Where each channel's payload keeps its external id and its contacts.
REF_FIELD = {
    "web": "submission_id",
    "app": "feedback_id",
    "email": "message_id",
    "phone": "call_id",
    "chat": "conversation_id",
    "social": "post_id",
    "store": "report_id",
    "generic": "external_id",
}


def fixture(name: str) -> dict[str, Any]:
    """A realistic native payload from tests/data/intake/payloads (a deep copy)."""
    return copy.deepcopy(json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))["payload"])


def unique(prefix: str = "t") -> str:
    """A short unique token."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def mobile() -> str:
    """A random valid Chinese mobile number, as people type it."""
    return f"139 {random.randint(1000, 9999)} {random.randint(1000, 9999)}"


def fresh(name: str, **changes: Any) -> dict[str, Any]:
    """A fixture payload with a new external id and a customer nobody else uses, plus ``changes``."""
    channel = name.split("_")[0]
    payload = fixture(name)
    payload[REF_FIELD[channel]] = unique(channel)
    if "customer_id" in payload:
        payload["customer_id"] = unique("cust")
    for field in ("email", "from"):
        if field in payload:
            payload[field] = f"{unique('mail')}@example.com"
    for field in ("phone", "caller_number"):
        if payload.get(field):
            payload[field] = mobile()
    if "handle" in payload:
        payload["handle"] = unique("handle")
    if "social_handle" in payload:
        payload["social_handle"] = f"wechat:{unique('h')}"
    payload.update(changes)
    return payload


def sign(key_id: str, secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The signature headers of ``body``."""
    return signed_headers(key_id, secret, int(time.time()) if timestamp is None else timestamp, body)


class Channels:
    """Posts to one intake the way channel integrations do."""

    def __init__(self, base_url: str, keys: dict[str, list[dict[str, str]]]) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=20)
        self.keys = keys

    def key(self, channel: str, index: int = 0) -> tuple[str, str]:
        """Key id and secret of a channel."""
        entry = self.keys[channel][index]
        return entry["key_id"], entry["secret"]

    def post_raw(
        self, channel: str, body: bytes, headers: dict[str, str] | None = None, path: str = "complaints"
    ) -> httpx.Response:
        """POST bytes as they are, with exactly the given headers."""
        return self.client.post(
            f"/v1/channels/{channel}/{path}",
            content=body,
            headers={"content-type": "application/json", **(headers or {})},
        )

    def post(
        self,
        channel: str,
        payload: Any,
        *,
        key: int = 0,
        idempotency_key: str | None = None,
        path: str = "complaints",
        retry: int = 0,
    ) -> httpx.Response:
        """POST a payload signed with the channel's key.

        ``retry`` dates the signature that many seconds later, as a client retrying later would: a
        signature covers the second it was made, so the same body signed in the same second is a replay.
        """
        body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        headers = sign(*self.key(channel, key), body, timestamp=int(time.time()) + retry)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self.post_raw(channel, body, headers, path)

    def bulk(self, channel: str, lines: list[Any]) -> httpx.Response:
        """POST an NDJSON back-fill, signed."""
        body = b"\n".join(x if isinstance(x, bytes) else json.dumps(x, ensure_ascii=False).encode() for x in lines)
        headers = {"content-type": "application/x-ndjson", **sign(*self.key(channel), body)}
        return self.client.post(f"/v1/channels/{channel}/complaints/bulk", content=body, headers=headers)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


async def publish(
    bootstrap: str, data: EventData, complaint_id: str, *, source: str = "/redress/routing", at: datetime | None = None
) -> str:
    """Publish one event as a downstream service would (``at``: when it was made); its event id."""
    envelope = new_event(data, source=source, subject=complaint_id, correlation_id=complaint_id)
    if at is not None:
        envelope = envelope.model_copy(update={"time": at})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        key, value, headers = to_kafka(envelope)
        await producer.send_and_wait(str(data.topic), value, key=key, headers=headers)
    finally:
        await producer.stop()
    return envelope.id


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem+json body of a response that must have ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()  # type: ignore[no-any-return]
