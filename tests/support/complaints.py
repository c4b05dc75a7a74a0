"""Submitting complaints the way a channel integration does."""

import uuid
from typing import Any

import httpx

from tests.support.stack import Stack

DEFAULT_TEXT = "My order 2024112300123 arrived broken."


def web_complaint(customer_id: str | None = None, text: str = DEFAULT_TEXT) -> dict[str, Any]:
    """A valid web-form complaint body."""
    return {"customer_id": customer_id or f"cust-{uuid.uuid4().hex[:8]}", "text": text,
            "external_ref": f"web-{uuid.uuid4().hex[:10]}"}


def submit(stack: Stack, body: dict[str, Any], channel: str = "web") -> httpx.Response:
    """POST one complaint to intake."""
    with stack.client("intake") as client:
        return client.post(f"/v1/channels/{channel}/complaints", json=body)
