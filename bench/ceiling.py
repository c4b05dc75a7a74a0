"""The ceilings every figure is compared with: a bare FastAPI endpoint under uvicorn.

Ceiling B validates a complaint-like body and answers. Ceiling A does the same plus one INSERT
through asyncpg per request (``CEILING_DSN`` set). Nothing else: no outbox, no events, no
middleware. ``uvicorn bench.ceiling:app``.
"""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from fastapi import FastAPI
from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Ident = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]

TABLE_DDL = """
CREATE SCHEMA IF NOT EXISTS ceiling;
CREATE TABLE IF NOT EXISTS ceiling.complaints (
    id text PRIMARY KEY,
    submission_id text NOT NULL,
    customer_id text NOT NULL,
    email text,
    description text NOT NULL,
    received_at timestamptz NOT NULL
);
"""


class Complaint(BaseModel):
    """A body like the web form's: ten fields, limits, an aware timestamp."""

    model_config = ConfigDict(extra="forbid")

    submission_id: Ident
    customer_id: Ident
    name: Text | None = None
    email: Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    subject: Text | None = None
    description: Annotated[str, StringConstraints(min_length=1, max_length=50_000)]
    order_ref: Ident | None = None
    locale: Annotated[str, StringConstraints(max_length=35)] | None = None
    submitted_at: AwareDatetime | None = None


class Accepted(BaseModel):
    """The answer."""

    complaint_id: str
    status: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the pool when ceiling A is wanted."""
    dsn = os.environ.get("CEILING_DSN")
    app.state.pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10) if dsn else None
    yield
    if app.state.pool:
        await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/complaints", status_code=202)
async def submit(body: Complaint) -> Accepted:
    """Validate, optionally INSERT one row, answer."""
    complaint_id = str(uuid.uuid4())
    pool = app.state.pool
    if pool is not None:
        await pool.execute(
            "INSERT INTO ceiling.complaints (id, submission_id, customer_id, email, description, received_at)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            complaint_id, body.submission_id, body.customer_id, body.email, body.description, datetime.now(UTC),
        )
    return Accepted(complaint_id=complaint_id, status="received")
