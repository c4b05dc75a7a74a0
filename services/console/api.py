"""The console's HTTP routes: sign-in, the live stream, the views, and the proxy to the services."""

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from services.console.board import build_board
from services.console.filters import StreamFilter
from services.console.kpis import Window, build_kpis
from services.console.runtime import Console, get_console
from services.console.schemas import Overview, ServiceState, SessionInfo, SignIn
from services.console.session import (
    Session,
    clear_session_cookie,
    current_session,
    require_console_header,
    set_session_cookie,
)
from services.console.settings import DEV_OPERATORS, DEV_PASSWORD
from services.console.signin import authenticate
from services.console.sse import event_stream
from services.console.story import Scan, assemble, identities, scan_complaint
from services.console.upstream import SERVICES, Answer
from shared.auth import issue_token
from shared.events.vocabulary import Severity
from shared.problems import ProblemError, problem_responses

router = APIRouter(prefix="/v1", tags=["console"])
proxy_router = APIRouter(prefix="/api", tags=["proxy"])
ConsoleDep = Annotated[Console, Depends(get_console)]
SessionDep = Annotated[Session, Depends(current_session)]
COMPLAINT_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"
_PROXY_PATH = re.compile(r"^v1(/[A-Za-z0-9._~:@!$&'()*+,;=%-]+)*/?$")
_FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "idempotency-key", "x-correlation-id")
_FORWARDED_RESPONSE_HEADERS = ("content-type", "retry-after", "location", "etag", "link")


# ---- sign-in ----------------------------------------------------------------------------------


@router.get("/about", summary="What the sign-in page needs to know", tags=["session"])
async def about(console: ConsoleDep) -> dict[str, Any]:
    """Version and, in development with the built-in sign-ins, their names (never in production)."""
    settings = console.settings
    dev = settings.environment == "development" and not settings.operators and not settings.operators_file
    return {"version": "1.0.0", "environment": settings.environment,
            "development_signins": [u for u, _, _ in DEV_OPERATORS] if dev else None,
            "development_password": DEV_PASSWORD if dev else None}


@router.post("/session", response_model=SessionInfo, responses=problem_responses(400, 401, 422, 429),
             summary="Sign in", tags=["session"])
async def sign_in(body: SignIn, request: Request, response: Response, console: ConsoleDep) -> SessionInfo:
    """Check the password, issue an operator token and keep it in an HttpOnly session cookie."""
    settings = console.settings
    key = f"{body.username.strip().lower()}@{request.client.host if request.client else '-'}"
    wait = console.signin_guard.locked_for(key)
    if wait > 0:
        raise ProblemError(429, "Too many attempts", f"too many failed sign-ins; try again in {wait:.0f}s",
                           code="signin-locked", headers={"Retry-After": str(max(1, round(wait)))})
    account = await asyncio.to_thread(authenticate, settings.accounts, body.username, body.password)
    if account is None:
        console.signin_guard.failed(key)
        raise ProblemError(401, "Unauthorized", "wrong username or password", code="bad-credentials")
    console.signin_guard.succeeded(key)
    ttl = timedelta(hours=settings.session_hours)
    token = issue_token(settings.operator_token_secret, account.username, account.role, ttl)
    set_session_cookie(response, token, int(ttl.total_seconds()), settings.secure_cookies)
    return SessionInfo(subject=account.username, role=account.role, display_name=account.display_name,
                       expires_at=datetime.now(UTC) + ttl, token=token)


@router.get("/session", response_model=SessionInfo, responses=problem_responses(401, 429), summary="Who is signed in",
            tags=["session"])
async def who_am_i(session: SessionDep, console: ConsoleDep) -> SessionInfo:
    """The operator of the current session."""
    account = console.settings.accounts.get(session.operator.subject)
    return SessionInfo(subject=session.operator.subject, role=session.operator.role,
                       display_name=account.display_name if account else None, expires_at=session.expires_at)


@router.delete("/session", status_code=204, summary="Sign out", tags=["session"])
async def sign_out(response: Response, console: ConsoleDep) -> Response:
    """Forget the browser's session cookie."""
    clear_session_cookie(response, console.settings.secure_cookies)
    response.status_code = 204
    return response


# ---- overview ---------------------------------------------------------------------------------


@router.get("/services", response_model=Overview, responses=problem_responses(401, 429),
            summary="Readiness of the stack")
async def services(console: ConsoleDep, _session: SessionDep) -> Overview:
    """Whether each service answers ready, and the live stream's state."""
    answers = await asyncio.gather(*(console.upstream.ready(name) for name in SERVICES))
    states = [ServiceState(name=a.service, url=console.upstream.urls[a.service], ready=a.ok, detail=a.reason)
              for a in answers]
    return Overview(services=states, stream=console.hub.state())


# ---- live stream ------------------------------------------------------------------------------


@router.get(
    "/stream",
    summary="Live event stream (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An event stream"},
               **problem_responses(401, 422, 429, 503)},
)
async def stream(
    console: ConsoleDep,
    session: SessionDep,
    type: str | None = Query(default=None, max_length=400, pattern=r"^[a-z0-9_.*?\[\],\- ]+$",
                             description="Event types, comma-separated: globs (case.*) or prefixes (case.routed)."),
    customer: str | None = Query(default=None, max_length=100),
    complaint: str | None = Query(default=None, max_length=100, pattern=COMPLAINT_ID),
    severity: Severity | None = None,
    queue: str | None = Query(default=None, max_length=40, pattern=r"^[a-z0-9_-]+$"),
    backlog: int = Query(default=50, ge=0, le=500, description="Recent matching events sent first."),
    last_event_id: str | None = Header(default=None, max_length=40, description="Resume after this event."),
) -> StreamingResponse:
    """Every event as it happens, filtered; reconnecting browsers resume where they stopped."""
    hub = console.hub
    if len(hub.subscribers) >= console.settings.stream_max_clients:
        raise ProblemError(503, "Too many viewers", "the live stream has reached its client limit",
                           code="stream-full", headers={"Retry-After": "5"})
    flt = StreamFilter.build(type, customer, complaint, severity, queue)
    sub, replay = hub.subscribe(flt, last_event_id, backlog)
    hello = {**hub.state(), "filters": {"type": list(flt.types), "customer": customer, "complaint": complaint,
                                         "severity": severity, "queue": queue}}
    body = event_stream(hub, sub, replay, session.expires_at, console.settings.stream_heartbeat_seconds, hello)
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# ---- views ------------------------------------------------------------------------------------


@router.get("/board", responses=problem_responses(401, 404, 422, 429), summary="Queue board")
async def board(
    console: ConsoleDep,
    session: SessionDep,
    queue: str | None = Query(default=None, max_length=40, pattern=r"^[a-z0-9_-]+$"),
) -> dict[str, Any]:
    """Open cases by queue and customer tier, with the three SLA clocks of each."""
    return await build_board(console.upstream, session.token, queue, console.settings.board_max_cases)


@router.get("/kpis", responses=problem_responses(401, 422, 429), summary="KPI figures over a window")
async def kpis(
    console: ConsoleDep,
    session: SessionDep,
    window: Window = Query(default="24h", description="How far back the figures reach."),
) -> dict[str, Any]:
    """Every KPI with its target and source; a figure whose source is missing says why."""
    return await build_kpis(console.upstream, session.token, window, console.settings.satisfaction_target)


async def _scan(console: Console, complaint_id: str) -> Scan:
    settings = console.settings
    async with console.story_slots:
        try:
            return await scan_complaint(settings.bootstrap_servers, complaint_id, settings.story_max_messages,
                                        settings.story_timeout_seconds)
        except Exception as exc:
            return Scan(complete=False, note=f"the broker could not be read: {type(exc).__name__}: {exc}")


@router.get("/complaints/{complaint_id}/story", responses=problem_responses(401, 404, 422, 429, 503),
            summary="A complaint's full story")
async def story(
    console: ConsoleDep,
    session: SessionDep,
    complaint_id: str = Path(max_length=100, pattern=COMPLAINT_ID),
) -> dict[str, Any]:
    """Every event of the complaint from the broker, with the services' records of its case."""
    upstream, token = console.upstream, session.token
    scan, intake = await asyncio.gather(_scan(console, complaint_id),
                                        upstream.fetch("intake", f"/v1/complaints/{complaint_id}", token))
    if not scan.events and not intake.ok:
        if intake.status in (404, 422) and scan.complete:  # 422: not even shaped like one of intake's ids
            raise ProblemError(404, "Not found", f"no complaint {complaint_id}: intake does not know it and no "
                               "event carries it", code="not-found")
        raise ProblemError(503, "Service unavailable", f"cannot tell the story now: {scan.note or ''} "
                           f"{intake.reason or ''}".strip(), code="unavailable", headers={"Retry-After": "2"})
    ids = identities(complaint_id, scan.events, intake.data if intake.ok else None)
    answers: dict[str, Answer | None] = {"intake": intake}
    calls: dict[str, Any] = {}
    if case_id := ids["case_id"]:
        calls["routing"] = upstream.fetch("routing", f"/v1/cases/{case_id}", token)
        calls["recovery"] = upstream.fetch("recovery", "/v1/compensations", token, {"case_id": case_id})
        calls["recovery_ledger"] = upstream.fetch("recovery", "/v1/ledger", token, {"case_id": case_id})
    if ids["customer_id"]:
        calls["loyalty"] = upstream.fetch("loyalty", f"/v1/customers/{ids['customer_id']}/loyalty", token,
                                          {"ledger_limit": 200})
    answers.update(zip(calls, await asyncio.gather(*calls.values()), strict=True))
    return assemble(ids, scan, answers)


# ---- proxy ------------------------------------------------------------------------------------


@proxy_router.api_route(
    "/{service}/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    responses=problem_responses(401, 403, 404, 429, 502, 504), summary="Call a service's API as the signed-in operator",
)
async def proxy(service: str, path: str, request: Request, console: ConsoleDep, session: SessionDep) -> Response:
    """Forward ``/api/<service>/v1/...`` to the service with the operator's token; answers pass through."""
    if service not in SERVICES:
        raise ProblemError(404, "Not found", f"unknown service {service!r}; one of {', '.join(SERVICES)}",
                           code="unknown-service")
    if not _PROXY_PATH.match(path) or ".." in path.split("/"):
        raise ProblemError(404, "Not found", "only a service's /v1/ API can be reached through the console",
                           code="not-proxied")
    require_console_header(request, session)
    headers = {h: request.headers[h] for h in _FORWARDED_REQUEST_HEADERS if h in request.headers}
    body = await request.body() if request.method != "GET" else None
    answer = await console.upstream.send(service, request.method, "/" + path, session.token,
                                         params=list(request.query_params.multi_items()), content=body,
                                         headers=headers)
    passed = {h: answer.headers[h] for h in _FORWARDED_RESPONSE_HEADERS if h in answer.headers}
    return Response(answer.content, status_code=answer.status_code, headers=passed)
