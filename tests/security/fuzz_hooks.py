"""schemathesis hooks: sign every fuzzed intake request the way a channel integration does.

Loaded by the schemathesis CLI through SCHEMATHESIS_HOOKS=tests.security.fuzz_hooks.
"""

import re
import time
from typing import Any

import requests
import schemathesis

from shared.signing import signed_headers
from tests.support.infra import TEST_CHANNEL_KEYS

_CHANNEL = re.compile(r"/v1/channels/([^/]+)/")


class ChannelSigner(requests.auth.AuthBase):
    """Signs the exact body bytes about to be sent with the test key of the URL's channel."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        match = _CHANNEL.search(request.url or "")
        keys = TEST_CHANNEL_KEYS.get(match.group(1) if match else "web", TEST_CHANNEL_KEYS["web"])
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        request.headers.update(signed_headers(keys[0]["key_id"], keys[0]["secret"], int(time.time()), raw))
        return request


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Attach the signer to every call."""
    kwargs["auth"] = ChannelSigner()


@schemathesis.serializer("application/x-ndjson")
def ndjson(context: Any, value: Any) -> bytes:
    """Bulk imports: one JSON document per line."""
    import json

    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item, ensure_ascii=False).encode() + b"\n" for item in items)
