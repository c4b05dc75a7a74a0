"""OpenTelemetry traces whose context travels in the events: one complaint is one trace.

The W3C trace context rides in the CloudEvents ``traceparent`` attribute (Kafka header
``ce_traceparent``, the CloudEvents distributed-tracing extension). Spans:

- SERVER, one per HTTP request (``ServiceMiddleware``), continuing an incoming ``traceparent`` header;
- PRODUCER, one per event the outbox relay publishes (``publishing``), child of the context the event
  was emitted in; the published event carries the producer span as its ``traceparent``;
- CONSUMER, one per handled event (``consuming``), child of the producer span; events a handler emits
  are its children, so a complaint's chain is one tree across the four services.

Every event of one correlation id (the complaint id) belongs to the trace whose id is derived from
that correlation id (a UUID's 128 bits are the trace id: complaint ``1f0c…-…`` is trace ``1f0c……``),
so operator actions and timers that act on a complaint hours later join its trace too; the HTTP
request that caused them is kept as a span link. The first event of a complaint opens the trace's
root span.

Export: ``OTEL_TRACES_EXPORTER`` = ``none`` (default: spans exist for context and log correlation
but go nowhere), ``console`` (one JSON span per line on stdout) or ``otlp`` (needs the
``opentelemetry-exporter-otlp-proto-http`` package; configured by the standard ``OTEL_EXPORTER_OTLP_*``
variables). The trace id of the current span is added to every JSON log line as ``trace_id``.
"""

import contextlib
import functools
import hashlib
import logging
import os
import random
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from shared.envelope import Envelope

log = logging.getLogger(__name__)

TRACER_NAME = "redress"
EXPORTERS = ("none", "console", "otlp")
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_HEADERS = (b"traceparent", b"tracestate")
# Set only while the root span of a complaint is being created, so it gets the derived ids.
_forced_ids: ContextVar[tuple[int, int] | None] = ContextVar("forced_trace_ids", default=None)
_configured: TracerProvider | None = None
# Whether spans go anywhere. Without an exporter, PRODUCER spans would only cost CPU per event:
# events then carry the emitting span's traceparent, which keeps every event in its complaint's trace.
_exporting = False


class _CorrelatedIdGenerator(RandomIdGenerator):
    """Random ids, except for a complaint's root span, whose ids derive from the complaint id."""

    def generate_trace_id(self) -> int:
        forced = _forced_ids.get()
        return forced[0] if forced else super().generate_trace_id()

    def generate_span_id(self) -> int:
        forced = _forced_ids.get()
        return forced[1] if forced else super().generate_span_id()


class TraceIdLogFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` of the current span to log records (JsonFormatter prints them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = f"{ctx.trace_id:032x}"
            record.span_id = f"{ctx.span_id:016x}"
        return True


def _exporter_processor(name: str, service: str) -> SimpleSpanProcessor | BatchSpanProcessor | None:
    """The span processor for the configured exporter; SystemExit with what to do when it cannot work."""
    if name == "none":
        return None
    if name == "console":
        exporter = ConsoleSpanExporter(service_name=service, formatter=lambda span: span.to_json(indent=None) + "\n")
        return SimpleSpanProcessor(exporter)
    if name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore
        except ImportError:
            raise SystemExit(
                "OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: "
                "pip install opentelemetry-exporter-otlp-proto-http==1.45.2 (or set OTEL_TRACES_EXPORTER=none)"
            ) from None
        return BatchSpanProcessor(OTLPSpanExporter())
    raise SystemExit(f"OTEL_TRACES_EXPORTER={name!r} is not supported; use one of {', '.join(EXPORTERS)}")


def configure_tracing(service: str, exporter: str | None = None) -> TracerProvider:
    """Install the tracer provider of this process (once) and put trace ids into the logs."""
    global _configured, _exporting
    if _configured is None:
        name = (exporter or os.environ.get("OTEL_TRACES_EXPORTER") or "none").strip().lower()
        resource = Resource.create({"service.name": service, "service.namespace": "redress"})
        provider = TracerProvider(resource=resource, id_generator=_CorrelatedIdGenerator())
        processor = _exporter_processor(name, service)
        if processor is not None:
            provider.add_span_processor(processor)
        _exporting = processor is not None
        trace.set_tracer_provider(provider)
        _configured = provider
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, TraceIdLogFilter) for f in handler.filters):
            handler.addFilter(TraceIdLogFilter())
    return _configured


def spans_exported() -> bool:
    """Whether this process's spans go to an exporter (else PRODUCER spans are skipped)."""
    return _exporting


def add_span_processor(processor: SpanProcessor) -> None:
    """Send this process's spans to one more processor (an exporter added at run time, or a test's)."""
    global _exporting
    configure_tracing(TRACER_NAME).add_span_processor(processor)
    _exporting = True


def shutdown_tracing() -> None:
    """Flush spans still waiting for export (at process stop)."""
    if _configured is not None:
        with contextlib.suppress(Exception):
            _configured.force_flush(timeout_millis=2_000)


@functools.lru_cache(maxsize=1)  # get_tracer builds a Tracer on every call: ~33 us, paid per event
def tracer() -> trace.Tracer:
    """The Redress tracer (a proxy that follows the provider ``configure_tracing`` sets)."""
    return trace.get_tracer(TRACER_NAME)


@functools.lru_cache(maxsize=4096)  # every event of a complaint (or an incident's thousands) asks again
def trace_id_for(correlation_id: str) -> int:
    """The trace id of every event of one correlation id: a UUID's own 128 bits, else a hash."""
    try:
        value = uuid.UUID(correlation_id).int
    except ValueError:
        value = int.from_bytes(hashlib.sha256(correlation_id.encode()).digest()[:16], "big")
    return value or 1


@functools.lru_cache(maxsize=4096)
def root_span_id_for(correlation_id: str) -> int:
    """The span id of a complaint's root span, derived so every service can find its trace's root."""
    return int.from_bytes(hashlib.sha256(b"root:" + correlation_id.encode()).digest()[:8], "big") or 1


def format_traceparent(ctx: SpanContext) -> str:
    """The W3C ``traceparent`` value of a span context."""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The span context in a ``traceparent`` value, or None when absent or malformed."""
    if not value:
        return None
    ctx = trace.get_current_span(_PROPAGATOR.extract({"traceparent": value})).get_span_context()
    return ctx if ctx.is_valid else None


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32-hex trace id inside a ``traceparent`` value (None when absent or malformed)."""
    ctx = parse_traceparent(traceparent)
    return f"{ctx.trace_id:032x}" if ctx else None


def _context_of(parent: SpanContext | None) -> Context:
    return trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent else Context()


def complaint_root(correlation_id: str) -> SpanContext:
    """The (remote) root span context of one correlation id's trace."""
    return SpanContext(
        trace_id=trace_id_for(correlation_id),
        span_id=root_span_id_for(correlation_id),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


def event_traceparent(correlation_id: str, event_type: str, *, starts_chain: bool = False) -> str:
    """The ``traceparent`` of an event being emitted now.

    Inside the complaint's trace (a consumer span, the intake request that opened it), the current
    span is the parent. Elsewhere (an operator's request, a timer) a short span joins the complaint's
    trace and links to the current span. ``starts_chain`` (the first event of a correlation) creates
    the trace's root span itself.
    """
    current = trace.get_current_span().get_span_context()
    root = complaint_root(correlation_id)
    if current.is_valid and current.trace_id == root.trace_id:
        return format_traceparent(current)
    if not spans_exported():
        # A span nobody sees costs more than the handler's own work in a batch; a fresh span id keeps
        # each event its own hop in the complaint's trace, as an exported span would.
        return f"00-{root.trace_id:032x}-{random.getrandbits(64) or 1:016x}-{int(root.trace_flags):02x}"
    links = [Link(current)] if current.is_valid else []
    attributes = {"redress.correlation_id": correlation_id, "cloudevents.event_type": event_type}
    if starts_chain:
        token = _forced_ids.set((root.trace_id, root.span_id))
        try:
            span = tracer().start_span(f"{event_type} flow", context=Context(), links=links, attributes=attributes)
        finally:
            _forced_ids.reset(token)
    else:
        span = tracer().start_span(f"emit {event_type}", context=_context_of(root), links=links, attributes=attributes)
    span.end()
    ctx = span.get_span_context()
    # Without a configured SDK spans are invalid; the derived root still keeps the complaint's trace id.
    return format_traceparent(ctx if ctx.is_valid and ctx.trace_id == root.trace_id else root)


def with_traceparent(env: "Envelope") -> "Envelope":
    """The envelope with a ``traceparent`` (unchanged when it already has one)."""
    if env.traceparent:
        return env
    traceparent = traceparent_for(env.correlationid, env.type, causation_id=env.causationid, subject=env.subject)
    return env.model_copy(update={"traceparent": traceparent})


def traceparent_for(correlation_id: str, event_type: str, *, causation_id: str | None, subject: str | None) -> str:
    """The ``traceparent`` of an event about to be made (the first of its correlation starts the chain)."""
    starts = causation_id is None and subject == correlation_id
    return event_traceparent(correlation_id, event_type, starts_chain=starts)


@contextlib.contextmanager
def server_span(method: str, headers: Mapping[bytes, bytes]) -> Iterator[Span]:
    """The SERVER span of one HTTP request (ASGI headers), current while it runs; name it once routed."""
    carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items() if k in _TRACE_HEADERS}
    parent = _PROPAGATOR.extract(carrier)
    span = tracer().start_span(method, context=parent, kind=SpanKind.SERVER, attributes={"http.request.method": method})
    with trace.use_span(span, end_on_exit=True, record_exception=True, set_status_on_exception=True):
        yield span


def finish_server_span(span: Span, method: str, route: str, status: int) -> None:
    """Name the request span after its route and record the status (5xx is an error)."""
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def _record_error(span: Span, error: BaseException | None) -> None:
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


@contextlib.contextmanager
def publishing() -> Iterator[Callable[[str, "Envelope"], "Envelope"]]:
    """PRODUCER spans for a batch being published; ``publish(topic, env)`` returns the envelope to send.

    Spans end when the block exits (after the broker acknowledged), with the error if it failed.
    """
    spans: list[Span] = []

    def publish(topic: str, env: "Envelope") -> "Envelope":
        env = with_traceparent(env)
        if not spans_exported():
            return env
        span = tracer().start_span(
            f"{topic} publish",
            context=_context_of(parse_traceparent(env.traceparent)),
            kind=SpanKind.PRODUCER,
            attributes=_messaging_attributes(topic, env, "publish"),
        )
        spans.append(span)
        ctx = span.get_span_context()
        return env.model_copy(update={"traceparent": format_traceparent(ctx)}) if ctx.is_valid else env

    error: BaseException | None = None
    try:
        yield publish
    except BaseException as exc:
        error = exc
        raise
    finally:
        for span in spans:
            _record_error(span, error)
            span.end()


@contextlib.contextmanager
def consuming(env: "Envelope", topic: str, group: str) -> Iterator[Span]:
    """The CONSUMER span of one handled event, child of its producer span and current meanwhile."""
    attributes = {**_messaging_attributes(topic, env, "process"), "messaging.consumer.group.name": group}
    span = tracer().start_span(
        f"{topic} process",
        context=_context_of(parse_traceparent(env.traceparent)),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    )
    with trace.use_span(span, end_on_exit=True, record_exception=True, set_status_on_exception=True):
        yield span


def _messaging_attributes(topic: str, env: "Envelope", operation: str) -> dict[str, str]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.destination.name": topic,
        "messaging.message.id": env.id,
        "messaging.kafka.message.key": env.partitionkey,
        "cloudevents.event_id": env.id,
        "cloudevents.event_type": env.type,
        "redress.correlation_id": env.correlationid,
    }
