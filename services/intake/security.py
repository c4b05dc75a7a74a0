"""Channel authentication: per-channel API keys, HMAC-SHA256 over ``timestamp.body``, a replay window.

``authenticate`` checks what can be checked from the request alone (key known for this channel,
well-formed header, timestamp inside the window, digest matching the body) and answers 401 with the
reason. That a signature was not used before is checked by the caller in the transaction that acts
on the request (``store.claim_signature``), so a request rolled back can be sent again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.intake.settings import ChannelKey
from shared.problems import ProblemError
from shared.signing import KEY_ID_HEADER, SIGNATURE_HEADER, parse_signature_header, verify


@dataclass(frozen=True)
class VerifiedRequest:
    """A request whose signature checked out."""

    key_id: str
    digest: str
    timestamp: int


def unauthorized(reason: str, code: str) -> ProblemError:
    """A 401 problem naming why the request was refused."""
    return ProblemError(
        401, "Unauthorized", reason, code=code, headers={"WWW-Authenticate": 'Signature realm="redress-intake"'}
    )


def replayed() -> ProblemError:
    """The 401 for a signature seen before."""
    return unauthorized(
        "this signature was already used (replayed request); sign every request, retries included, anew",
        "signature-replayed",
    )


def authenticate(
    keys: list[ChannelKey], channel: str, headers: Mapping[str, str], body: bytes, now: float, window_seconds: int
) -> VerifiedRequest:
    """Check the key id and signature headers of a request to ``channel``; 401 with the reason when wrong."""
    key_id = headers.get(KEY_ID_HEADER, "").strip()
    header = headers.get(SIGNATURE_HEADER, "").strip()
    if not key_id and not header:
        raise unauthorized(f"request is not signed: send {KEY_ID_HEADER} and {SIGNATURE_HEADER}", "signature-missing")
    if not key_id:
        raise unauthorized(f"{KEY_ID_HEADER} header is missing", "signature-missing")
    if not header:
        raise unauthorized(f"{SIGNATURE_HEADER} header is missing", "signature-missing")
    key = next((k for k in keys if k.key_id == key_id), None)
    if key is None:
        raise unauthorized(f"key {key_id!r} is not a key of channel {channel}", "unknown-key")
    try:
        timestamp, digest = parse_signature_header(header)
    except ValueError:
        raise unauthorized(
            f"{SIGNATURE_HEADER} must be t=<unix seconds>,v1=<hex HMAC-SHA256 of t.body>", "signature-malformed"
        ) from None
    skew = now - timestamp
    if skew > window_seconds:
        raise unauthorized(f"signature is {int(skew)}s old; the window is {window_seconds}s", "signature-stale")
    if -skew > window_seconds:
        raise unauthorized(
            f"signature is dated {int(-skew)}s in the future; the window is {window_seconds}s", "signature-stale"
        )
    if not verify(key.secret.get_secret_value(), timestamp, body, digest.lower()):
        raise unauthorized("signature does not match the body for this key", "signature-mismatch")
    return VerifiedRequest(key_id=key.key_id, digest=digest.lower(), timestamp=timestamp)
