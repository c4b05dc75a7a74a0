"""Console: the operators' web console (live stream, queue board, KPIs, complaint stories).

A small FastAPI app of its own: it owns no tables and publishes nothing, so it does not use
``ServiceSpec`` (which builds a database, an outbox relay and consumers); it reuses the shared
problem handlers, middleware, logging and settings. Run: ``uvicorn services.console.app:app``.
"""

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.console.api import proxy_router, router
from services.console.runtime import Console, build_console, get_console
from services.console.settings import Settings
from shared.http import NO_FRAMEWORK_TELEMETRY, ServiceMiddleware
from shared.logs import configure_logging
from shared.problems import ProblemError, install_problem_handlers, problem_response
from shared.settings import load_settings

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" '
           'fill="#1f4e8c"/><path d="M9 23V9h8a5 5 0 0 1 0 10h-8m7 0 6 4" stroke="#fff" stroke-width="3" '
           'fill="none" stroke-linecap="round" stroke-linejoin="round"/></svg>')


class SecurityHeaders:
    """Strict browser policies on every answer: own scripts only, no framing, no sniffing, no caching of data."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"] == "/" or scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-cache" if static else b"no-store"),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


def health_router() -> APIRouter:
    """``/healthz``, ``/readyz`` (the broker answers and the live stream reads it), ``/metrics``."""
    ops = APIRouter(tags=["operations"])

    @ops.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @ops.get("/readyz", summary="Readiness: broker reachable and live stream reading", responses={503: {}})
    async def readyz(request: Request) -> Response:
        console = await get_console(request)
        checks = {"stream": console.hub.status}
        try:
            await console.bus.check()
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = f"unavailable: {type(exc).__name__}"
        if console.shutting_down:
            checks["shutdown"] = "in progress"
        if checks["broker"] == "ok" and checks["stream"] == "live" and not console.shutting_down:
            return JSONResponse({"status": "ready", "checks": checks})
        err = ProblemError(503, "Not ready", str(checks), code="not-ready", headers={"Retry-After": "2"})
        return problem_response(request, err)

    @ops.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return ops


def page_router() -> APIRouter:
    """The single page and its icon."""
    pages = APIRouter(include_in_schema=False)

    @pages.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @pages.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(FAVICON, media_type="image/svg+xml")

    return pages


def _close_streams_on_sigterm(console: Console) -> None:
    """On SIGTERM, report not-ready and end open event streams before the server waits on them."""
    server_handler = signal.getsignal(signal.SIGTERM)
    if not callable(server_handler):
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: object) -> None:
        console.shutting_down = True
        loop.call_soon_threadsafe(console.hub.close_subscribers)
        delay = console.settings.shutdown_unready_seconds
        loop.call_soon_threadsafe(loop.call_later, delay, server_handler, signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def create_console_app(settings: Settings) -> FastAPI:
    """The console's FastAPI app."""
    configure_logging("console", settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        console = build_console(settings)
        app.state.runtime = console
        await asyncio.to_thread(lambda: settings.accounts)  # hash the development sign-ins once, off the loop
        reader = asyncio.create_task(console.hub.run())
        watcher = asyncio.create_task(console.hub.watch_broker(console.bus.check))
        _close_streams_on_sigterm(console)
        log.info("console started")
        try:
            yield
        finally:
            console.shutting_down = True
            console.hub.stop()
            console.hub.close_subscribers()
            reader.cancel()
            watcher.cancel()
            await asyncio.gather(reader, watcher, return_exceptions=True)
            await console.upstream.close()
            await console.bus.close()
            log.info("console stopped")

    app = FastAPI(
        title="Redress console",
        description="Operators' web console: live event stream, queue board, KPIs and complaint stories.",
        version="1.0.0",
        lifespan=lifespan,
        telemetry=NO_FRAMEWORK_TELEMETRY,
    )
    install_problem_handlers(app)
    app.add_middleware(ServiceMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    for part in (health_router(), router, proxy_router, page_router()):
        app.include_router(part)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


app = create_console_app(load_settings(Settings))
