"""Submitting complaints the way a channel integration does."""

import json
import time
import uuid
from typing import Any

import httpx

from shared.signing import signed_headers
from tests.support.infra import TEST_CHANNEL_KEYS
from tests.support.stack import Stack

DEFAULT_TEXT = "My order 2024112300123 arrived broken."


def web_complaint(customer_id: str | None = None, text: str = DEFAULT_TEXT) -> dict[str, Any]:
    """A valid web-form complaint body."""
    return {"customer_id": customer_id or f"cust-{uuid.uuid4().hex[:8]}", "text": text,
            "external_ref": f"web-{uuid.uuid4().hex[:10]}"}


def signed_post(
    client: httpx.Client, base_url: str, channel: str, body: dict[str, Any], idempotency_key: str | None = None
) -> httpx.Response:
    """POST a complaint as a channel integration does (signed, with an optional Idempotency-Key)."""
    raw = json.dumps(body, ensure_ascii=False).encode()
    key = TEST_CHANNEL_KEYS[channel][0]
    headers = {"content-type": "application/json",
               **signed_headers(key["key_id"], key["secret"], int(time.time()), raw)}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return client.post(f"{base_url}/v1/channels/{channel}/complaints", content=raw, headers=headers)


def submit(stack: Stack, body: dict[str, Any], channel: str = "web") -> httpx.Response:
    """POST one complaint to intake."""
    with httpx.Client(timeout=10) as client:
        return signed_post(client, stack.url("intake"), channel, body)
