"""HMAC-SHA256 request signing for channel integrations (as payment and code-hosting webhooks do).

The signature covers ``"<unix timestamp>.<raw body>"``; it travels in the ``X-Redress-Signature``
header as ``t=<timestamp>,v1=<hex digest>`` next to ``X-Redress-Key-Id``.
"""

import hashlib
import hmac

SIGNATURE_HEADER = "X-Redress-Signature"
KEY_ID_HEADER = "X-Redress-Key-Id"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``timestamp.body``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The value of the signature header."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def parse_signature_header(value: str) -> tuple[int, str]:
    """Timestamp and digest from a header value; ValueError when malformed."""
    parts = dict(p.split("=", 1) for p in value.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts:
        raise ValueError("signature header needs t=<timestamp>,v1=<hex>")
    return int(parts["t"]), parts["v1"]


def signed_headers(key_id: str, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Headers a channel integration sends with a signed request."""
    return {KEY_ID_HEADER: key_id, SIGNATURE_HEADER: signature_header(secret, timestamp, body)}


def verify(secret: str, timestamp: int, body: bytes, digest: str) -> bool:
    """Constant-time check of a digest."""
    return hmac.compare_digest(signature(secret, timestamp, body), digest)
