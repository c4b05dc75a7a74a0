"""HTTP idempotency: a retried write with the same key returns the first answer and has no second effect.

The stored answer is written in the same transaction as the effect, so a crash between the two
cannot leave one without the other. Reusing a key with a different body is a 422.
"""

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database, insert_ignore, utcnow
from shared.problems import ProblemError


def request_hash(body: Any) -> str:
    """A stable hash of a request body."""
    raw = body if isinstance(body, bytes) else json.dumps(body, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()


async def stored_answer(
    conn: AsyncConnection, db: Database, scope: str, key: str, body_hash: str
) -> tuple[int, Any] | None:
    """The first answer for (scope, key), or None; 422 when the key was used with another body."""
    t = db.tables.idempotency
    row = (
        await conn.execute(
            sa.select(t.c.request_hash, t.c.status_code, t.c.response).where(t.c.scope == scope, t.c.key == key)
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != body_hash:
        raise ProblemError(
            422, "Idempotency key reused", "This Idempotency-Key was used with a different request body.",
            code="idempotency-key-reused",
        )
    return row.status_code, row.response


async def remember_answer(
    conn: AsyncConnection, db: Database, scope: str, key: str, body_hash: str, status: int, response: Any
) -> bool:
    """Store the answer for (scope, key) in the effect's transaction; False if another request won."""
    return await insert_ignore(
        conn,
        db.tables.idempotency,
        {"scope": scope, "key": key, "request_hash": body_hash, "status_code": status, "response": response,
         "created_at": utcnow()},
    )
