"""Builds a Redress service: FastAPI app, database, bus, outbox relay, consumer, timers, health.

Every service's ``app.py`` describes itself as a ``ServiceSpec`` and calls ``create_app``; the
running pieces are reachable from routes as ``Runtime`` (``request.app.state.runtime``).
"""

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.asyncapi import asyncapi_router
from shared.bus import KafkaBus
from shared.consumer import EventConsumer, Handler
from shared.db import Database, DeliveryTables, make_engine
from shared.http import NO_FRAMEWORK_TELEMETRY, ServiceMiddleware
from shared.logs import configure_logging
from shared.metrics import refresh_database_gauges
from shared.openapi import problem_openapi
from shared.outbox import Emitter, OutboxRelay
from shared.problems import ProblemError, install_problem_handlers, problem_response
from shared.ratelimit import RateLimiter
from shared.settings import ServiceSettings
from shared.statistics import keep_statistics
from shared.timer_batch import BatchedTimerWorker
from shared.timers import TimerHandler, TimerWorker
from shared.tracing import configure_tracing, shutdown_tracing

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The live parts of one service process."""

    name: str
    settings: ServiceSettings
    db: Database
    bus: KafkaBus
    emitter: Emitter
    relay: OutboxRelay
    consumer: EventConsumer | None = None
    timers: TimerWorker | None = None
    operator_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(20, 60))
    shutting_down: bool = False
    state: dict[str, object] = field(default_factory=dict)


BackgroundTask = Callable[[Runtime], Awaitable[None]]


@dataclass
class ServiceSpec:
    """What a service is: its settings, tables, routes, event handlers, timers and tasks."""

    name: str
    description: str
    settings: ServiceSettings
    tables: DeliveryTables
    routers: list[APIRouter]
    handlers: dict[str, Handler] = field(default_factory=dict)
    consumes: list[str] = field(default_factory=list)
    timer_handlers: dict[str, TimerHandler] = field(default_factory=dict)
    tasks: list[BackgroundTask] = field(default_factory=list)
    on_start: Callable[[Runtime], Awaitable[None]] | None = None
    version: str = "1.0.0"
    openapi_tags: list[dict[str, str]] = field(default_factory=list)


def build_runtime(spec: ServiceSpec) -> Runtime:
    """Create (not start) the database, bus, relay, consumer and timer worker."""
    settings = spec.settings
    db = Database(make_engine(settings), spec.tables, settings.db_schema)
    bus = KafkaBus(settings, client_id=f"redress-{spec.name}")
    emitter = Emitter(db, source=f"/redress/{spec.name}")
    runtime = Runtime(spec.name, settings, db, bus, emitter, OutboxRelay(db, bus, settings))
    runtime.operator_limiter = RateLimiter(settings.operator_rate_per_second, settings.operator_rate_burst)
    if spec.handlers:
        runtime.consumer = EventConsumer(
            service=spec.name, settings=settings, db=db, bus=bus, emitter=emitter,
            handlers=spec.handlers, topics=spec.consumes,
        )
    if spec.timer_handlers:
        # Batched: one transaction per claimed batch; falls back to timer-by-timer after a failure.
        runtime.timers = BatchedTimerWorker(db, emitter, spec.timer_handlers, settings)
    return runtime


async def _maintain_outbox(runtime: Runtime) -> None:
    """Keep the backlog gauges fresh and purge rows the broker already holds."""
    while not runtime.shutting_down:
        with contextlib.suppress(Exception):
            await runtime.relay.backlog()
            await runtime.relay.purge_published(timedelta(hours=1))
        for _ in range(30):  # 15 s, in steps short enough not to hold up a shutdown
            if runtime.shutting_down:
                return
            await asyncio.sleep(0.5)


async def _keep_statistics(runtime: Runtime) -> None:
    """Analyze the service's tables as they grow (``shared.statistics``)."""
    settings = runtime.settings
    await keep_statistics(runtime.db, settings.db_analyze_interval_seconds, settings.db_analyze_min_rows,
                          settings.db_analyze_growth, lambda: runtime.shutting_down)


def create_app(spec: ServiceSpec) -> FastAPI:
    """The service's FastAPI app with lifespan, health, metrics and problem+json errors."""
    configure_logging(spec.name, spec.settings.log_level)
    configure_tracing(spec.name)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(spec)
        app.state.runtime = runtime
        if spec.on_start:
            await spec.on_start(runtime)
        loops: list[Callable[[], Awaitable[None]]] = [runtime.relay.run, lambda: _maintain_outbox(runtime)]
        if runtime.consumer:
            loops.append(runtime.consumer.run)
        if runtime.timers:
            loops.append(runtime.timers.run)
        loops.append(lambda: _keep_statistics(runtime))
        loops += [lambda t=task: t(runtime) for task in spec.tasks]
        tasks = [asyncio.create_task(loop()) for loop in loops]
        _unready_before_exit(runtime)
        log.info("%s started", spec.name)
        try:
            yield
        finally:
            await _shutdown(runtime, tasks)

    app = FastAPI(
        title=f"Redress {spec.name}", description=spec.description, version=spec.version,
        lifespan=lifespan, openapi_tags=spec.openapi_tags or None, telemetry=NO_FRAMEWORK_TELEMETRY,
    )
    install_problem_handlers(app)
    app.add_middleware(ServiceMiddleware, max_body_bytes=spec.settings.max_body_bytes)
    app.include_router(health_router())
    app.include_router(asyncapi_router(spec.name, spec.handlers))
    for router in spec.routers:
        app.include_router(router)
    app.openapi = lambda: problem_openapi(app)  # type: ignore[method-assign]
    return app


def _unready_before_exit(runtime: Runtime) -> None:
    """On SIGTERM report not-ready first, then hand the signal to the server after a delay.

    Load balancers stop sending new requests once readiness fails; the server then finishes
    in-flight requests and the lifespan shutdown commits what consumers finished.
    """
    server_handler = signal.getsignal(signal.SIGTERM)
    if not callable(server_handler):
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: object) -> None:
        runtime.shutting_down = True
        delay = runtime.settings.shutdown_unready_seconds
        loop.call_soon_threadsafe(loop.call_later, delay, server_handler, signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


async def _shutdown(runtime: Runtime, tasks: list[asyncio.Task[None]]) -> None:
    """Stop taking work, let the loops finish their batch, publish what is left, close."""
    runtime.shutting_down = True
    if runtime.consumer:
        runtime.consumer.stop()
    if runtime.timers:
        runtime.timers.stop()
    runtime.relay.stop()
    _, pending = await asyncio.wait(tasks, timeout=runtime.settings.shutdown_grace_seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(runtime.relay.drain_once(), 5)
    await runtime.bus.close()
    await runtime.db.dispose()
    shutdown_tracing()
    log.info("%s stopped", runtime.name)


def runtime_of(request: Request) -> Runtime:
    """The service's runtime, for code that holds the request."""
    return request.app.state.runtime  # type: ignore[no-any-return]


async def get_runtime(request: Request) -> Runtime:
    """FastAPI dependency: the service's runtime (async, so FastAPI calls it on the event loop
    instead of handing it to the thread pool: measured at twice the CPU per request otherwise)."""
    return runtime_of(request)


def health_router() -> APIRouter:
    """``/healthz`` (the process lives), ``/readyz`` (database and broker answer), ``/metrics``."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: database and broker reachable", responses={503: {}})
    async def readyz(request: Request) -> Response:
        runtime = runtime_of(request)
        checks: dict[str, str] = {}
        if runtime.shutting_down:
            checks["shutdown"] = "in progress"
        try:
            await asyncio.wait_for(runtime.db.ping(), 2)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unavailable: {type(exc).__name__}"
        try:
            await runtime.bus.check()
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = f"unavailable: {type(exc).__name__}"
        ready = checks.get("database") == "ok" and checks.get("broker") == "ok" and not runtime.shutting_down
        if ready:
            return JSONResponse({"status": "ready", "checks": checks})
        err = ProblemError(503, "Not ready", str(checks), code="not-ready", headers={"Retry-After": "2"})
        return problem_response(request, err)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        await refresh_database_gauges(getattr(request.app.state, "runtime", None))
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
