"""HTTP plumbing shared by recovery's routes: the policy, idempotent writes, retries, cursors."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.recovery.policy import RecoveryPolicy
from shared.idempotency import remember_answer, request_hash, stored_answer
from shared.problems import FieldError, ProblemError
from shared.service import Runtime, runtime_of

# Deadlock and serialization failures: the database chose this transaction as the victim; run it again.
_RETRYABLE_STATES = frozenset({"40P01", "40001"})
_RETRYABLE_NAMES = frozenset({"DeadlockDetectedError", "SerializationError"})
ATTEMPTS = 4
# Ids in paths and queries: no control characters (PostgreSQL text cannot even hold NUL).
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"

Work = Callable[[AsyncConnection], Awaitable[tuple[int, Any]]]


async def get_policy(request: Request) -> RecoveryPolicy:
    """FastAPI dependency: the policy loaded at start."""
    return runtime_of(request).state["policy"]  # type: ignore[return-value]


def is_retryable(exc: BaseException) -> bool:
    """True when the database aborted the transaction to break a deadlock or a serialization conflict."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    cause = getattr(orig, "__cause__", None)
    return state in _RETRYABLE_STATES or type(cause).__name__ in _RETRYABLE_NAMES


async def write(runtime: Runtime, scope: str, idempotency_key: str | None, body: Any, work: Work) -> JSONResponse:
    """Run `work` in one transaction; with an Idempotency-Key a retry returns the first answer."""
    body_hash = request_hash(jsonable_encoder(body))
    for attempt in range(ATTEMPTS):
        try:
            return await _write_once(runtime, scope, idempotency_key, body_hash, work)
        except DBAPIError as exc:
            if not is_retryable(exc) or attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def _write_once(runtime: Runtime, scope: str, key: str | None, body_hash: str, work: Work) -> JSONResponse:
    db = runtime.db
    async with db.transaction() as conn:
        if key:
            stored = await stored_answer(conn, db, scope, key, body_hash)
            if stored is not None:
                return JSONResponse(stored[1], status_code=stored[0], headers={"Idempotent-Replay": "true"})
        status, payload = await work(conn)
        encoded = jsonable_encoder(payload)
        if key and not await remember_answer(conn, db, scope, key, body_hash, status, encoded):
            raise ProblemError(
                409,
                "Conflict",
                "a request with this Idempotency-Key is in progress; retry",
                code="idempotency-in-progress",
            )
    return JSONResponse(encoded, status_code=status)


def encode_cursor(values: list[Any]) -> str:
    """An opaque cursor for the next page."""
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """The values of a cursor; 422 naming the parameter when it was not made by us."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(values, list) or len(values) != size:
            raise ValueError("wrong shape")
        return values
    except ValueError as exc:
        raise ProblemError(
            422,
            "Validation failed",
            "cursor is not valid",
            code="validation",
            errors=[FieldError(field="query.cursor", message=str(exc))],
        ) from None


def cursor_time(value: Any) -> datetime:
    """A timestamp taken from a cursor; 422 when it is not one."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise _bad_cursor(str(exc)) from None
    if parsed.tzinfo is None:
        raise _bad_cursor("timestamp without a time zone")
    return parsed


def _bad_cursor(message: str) -> ProblemError:
    return ProblemError(
        422,
        "Validation failed",
        "cursor is not valid",
        code="validation",
        errors=[FieldError(field="query.cursor", message=message)],
    )
