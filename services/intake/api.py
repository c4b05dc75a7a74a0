"""Intake's HTTP routes: channels submit complaints (one, or a bulk NDJSON back-fill); operators read them."""

from __future__ import annotations

import base64
import binascii
import json
import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.intake import directory, store
from services.intake.acceptance import Answer, IntakeService, Submission
from services.intake.channels import PayloadError, adapter_for
from services.intake.channels.base import NormalizedComplaint
from services.intake.openapi import channel_request_body
from services.intake.schemas import (
    BulkLineResult,
    BulkResult,
    ComplaintAccepted,
    ComplaintPage,
    ComplaintSummary,
    ComplaintView,
)
from services.intake.security import VerifiedRequest, authenticate
from services.intake.settings import Settings
from shared.auth import Operator, require_role
from shared.events.vocabulary import Channel, Role
from shared.idempotency import request_hash
from shared.problems import FieldError, ProblemError, problem_responses
from shared.ratelimit import RateLimiter
from shared.service import Runtime, get_runtime

router = APIRouter(prefix="/v1")
EXCERPT_CHARS = 200
SIGNED = {
    "X-Redress-Key-Id": "The channel key's id.",
    "X-Redress-Signature": "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<raw body>' with the key's secret>",
}
SIGNED_DOC = (
    "Signed with the channel's key: `X-Redress-Key-Id` and `X-Redress-Signature: t=<unix seconds>,v1=<hex>` where "
    "the digest is HMAC-SHA256 of `<t>.<raw body>`. Signatures older than the window (5 minutes) or used before are "
    "refused with 401; sign every request, retries included, anew."
)
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, description="Retry with the same key to get the first answer."),
]


async def service(runtime: Runtime = Depends(get_runtime)) -> IntakeService:
    """FastAPI dependency: the process's intake service."""
    return runtime.state["intake"]  # type: ignore[return-value]


def _settings(runtime: Runtime) -> Settings:
    return runtime.settings  # type: ignore[return-value]


def _too_large(size: int, limit: int, what: str) -> ProblemError:
    return ProblemError(413, "Payload too large", f"{what} is {size} bytes; at most {limit}", code="payload-too-large")


async def _verified(request: Request, runtime: Runtime, channel: Channel, raw: bytes) -> VerifiedRequest:
    settings = _settings(runtime)
    verified = authenticate(
        settings.keys_for(channel), channel.value, request.headers, raw, time.time(), settings.signature_window_seconds
    )
    limiter = runtime.state.get("channel_limiter")
    if limiter is None:  # made once per process, not built and thrown away on every request
        limiter = runtime.state["channel_limiter"] = RateLimiter(
            settings.channel_rate_per_second, settings.channel_rate_burst
        )
    limiter.enforce(verified.key_id, f"channel key {verified.key_id}")  # type: ignore[attr-defined]
    return verified


def _json(raw: bytes, where: tuple[str | int, ...]) -> Any:
    """The parsed body; 422 for anything that is not a JSON document of valid Unicode text."""
    try:
        value = json.loads(raw)
        # A lone surrogate (\ud800) parses but can never be stored or published as UTF-8.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = "not valid JSON" if isinstance(exc, json.JSONDecodeError) else "not valid UTF-8 JSON"
        raise _invalid([{"loc": where, "msg": f"{reason}: {exc}", "type": "json_invalid"}]) from None
    except RecursionError:
        raise _invalid([{"loc": where, "msg": "JSON nested too deeply", "type": "json_invalid"}]) from None
    return value


def _invalid(errors: list[dict[str, Any]]) -> RequestValidationError:
    return RequestValidationError(errors)


def _normalize(runtime: Runtime, channel: Channel, payload: Any, where: tuple[str | int, ...]) -> NormalizedComplaint:
    """The channel adapter's complaint; its field errors come back under ``where`` (``body`` or a line)."""
    intake: IntakeService = runtime.state["intake"]  # type: ignore[assignment]
    try:
        return adapter_for(channel).normalize(payload, intake.policy.normalization)
    except ValidationError as exc:
        raise _invalid(
            [{"loc": (*where, *e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)]
        ) from None
    except PayloadError as exc:
        raise _invalid([{"loc": (*where, *exc.loc), "msg": exc.msg, "type": "value_error"}]) from None


def _answer(answer: Answer) -> JSONResponse:
    headers = {"Location": f"/v1/complaints/{answer.body.get('complaint_id')}"}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


@router.post(
    "/channels/{channel}/complaints",
    tags=["channels"],
    status_code=202,
    response_model=ComplaintAccepted,
    responses={
        202: {"description": "Accepted: a new complaint, or a follow-up of an open one (see `outcome`)."},
        **problem_responses(401, 413, 422, 429, 503),
    },
    summary="Submit one complaint in the channel's native shape",
    description=SIGNED_DOC,
    openapi_extra={"requestBody": channel_request_body()},
)
async def submit_complaint(
    request: Request,
    channel: Channel,
    idempotency_key: IdempotencyKey = None,
    runtime: Runtime = Depends(get_runtime),
    intake: IntakeService = Depends(service),
) -> JSONResponse:
    """Normalize, deduplicate, resolve the customer, classify and publish ``complaint.received.v1``.

    A message that continues an open complaint of the same customer is recorded as a follow-up and
    published as ``complaint.followed_up.v1`` instead. The same (channel, external reference) or the same
    ``Idempotency-Key`` returns the first answer with ``Idempotent-Replayed: true`` and publishes nothing.
    """
    raw = await request.body()
    limit = _settings(runtime).max_complaint_bytes
    if len(raw) > limit:
        raise _too_large(len(raw), limit, "a complaint")
    verified = await _verified(request, runtime, channel, raw)
    complaint = _normalize(runtime, channel, _json(raw, ("body",)), ("body",))
    submission = Submission(complaint, verified, idempotency_key, request_hash(raw))
    return _answer(await intake.accept(submission))


@router.post(
    "/channels/{channel}/complaints/bulk",
    tags=["channels"],
    response_model=BulkResult,
    responses=problem_responses(401, 413, 422, 429, 503),
    summary="Back-fill many complaints: one native payload per line (NDJSON)",
    description=SIGNED_DOC + " The signature covers the whole body. Every line needs an external reference, so "
    "running the same import again creates nothing twice.",
    openapi_extra={"requestBody": {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
)
async def bulk_import(
    request: Request,
    channel: Channel,
    runtime: Runtime = Depends(get_runtime),
    intake: IntakeService = Depends(service),
) -> BulkResult:
    """Accept every valid line on its own; a bad line is reported and the others go on."""
    raw = await request.body()
    settings = _settings(runtime)
    verified = await _verified(request, runtime, channel, raw)
    lines = [(number, line) for number, line in enumerate(raw.splitlines(), start=1) if line.strip()]
    if len(lines) > settings.bulk_max_lines:
        raise _too_large(len(lines), settings.bulk_max_lines, "the import's line count")
    await intake.claim(verified)
    results = [await _bulk_line(runtime, intake, channel, number, line) for number, line in lines]
    outcomes = [r.outcome for r in results]
    return BulkResult(
        lines=len(results), created=outcomes.count("created"), followed_up=outcomes.count("followed_up"),
        duplicates=outcomes.count("duplicate"), rejected=outcomes.count("rejected"), results=results,
    )


async def _bulk_line(
    runtime: Runtime, intake: IntakeService, channel: Channel, number: int, line: bytes
) -> BulkLineResult:
    where: tuple[str | int, ...] = ("line", number)
    try:
        limit = _settings(runtime).max_complaint_bytes
        if len(line) > limit:
            raise _invalid([{"loc": where, "msg": f"line is {len(line)} bytes; at most {limit}", "type": "too_long"}])
        complaint = _normalize(runtime, channel, _json(line, where), where)
        if not complaint.external_ref:
            raise _invalid([{"loc": where, "msg": "a bulk line needs an external reference", "type": "missing"}])
        answer = await intake.accept(Submission(complaint, backfill=True))
    except RequestValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        return BulkLineResult(line=number, outcome="rejected", errors=errors)
    outcome = "duplicate" if answer.replayed else answer.body["outcome"]
    return BulkLineResult(line=number, outcome=outcome, complaint_id=answer.body["complaint_id"])


@router.get(
    "/complaints/{complaint_id}",
    tags=["complaints"],
    response_model=ComplaintView,
    responses=problem_responses(401, 403, 404, 422),
    summary="One complaint with its messages and status timeline",
)
async def get_complaint(
    complaint_id: str = Path(max_length=40, pattern=r"^[A-Za-z0-9-]+$"),
    runtime: Runtime = Depends(get_runtime),
    operator: Operator = Depends(require_role(Role.AGENT)),
) -> ComplaintView:
    """The complaint as intake stored it, its follow-ups, and every step downstream services reported."""
    async with runtime.db.engine.connect() as conn:
        row = await store.complaint(conn, complaint_id)
        if row is None:
            raise ProblemError(404, "Not found", f"complaint {complaint_id} does not exist", code="not-found")
        messages = await store.messages_of(conn, complaint_id)
        timeline = await store.timeline_of(conn, complaint_id)
    return ComplaintView.model_validate({**row, "messages": messages, "timeline": timeline})


def _cursor(row: dict[str, Any]) -> str:
    raw = f"{row['received_at'].isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _after(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        at, complaint_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|", 1)
        return datetime.fromisoformat(at), complaint_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ProblemError(
            422, "Validation failed", "cursor is not one this API gave out", code="validation",
            errors=[FieldError(field="query.cursor", message="not a cursor from a previous page")],
        ) from None


@router.get(
    "/complaints",
    tags=["complaints"],
    response_model=ComplaintPage,
    responses=problem_responses(401, 403, 422),
    summary="A customer's complaints, newest first, page by page",
)
async def list_complaints(
    customer_id: str = Query(min_length=1, max_length=100, description="Also finds provisional ids merged into it."),
    limit: int = Query(default=20, ge=1, le=100),
    cursor: str | None = Query(default=None, max_length=200),
    runtime: Runtime = Depends(get_runtime),
    operator: Operator = Depends(require_role(Role.AGENT)),
) -> ComplaintPage:
    """Complaints of a customer across every channel (including provisional customers linked to it)."""
    after = _after(cursor)
    async with runtime.db.engine.connect() as conn:
        canonical = await directory.canonical_id(conn, customer_id)
        ids = await directory.customer_ids(conn, canonical)
        rows = await store.complaints_page(conn, ids, after, limit + 1)
    items = [
        ComplaintSummary.model_validate({**row, "excerpt": row["text"][:EXCERPT_CHARS]}) for row in rows[:limit]
    ]
    next_cursor = _cursor(rows[limit - 1]) if len(rows) > limit else None
    return ComplaintPage(customer_id=canonical, customer_ids=ids, items=items, next_cursor=next_cursor)
