"""Trace context in the events: one complaint is one trace, whatever path its events take."""

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared import tracing
from shared.envelope import Envelope, new_event
from shared.events.cases import CaseResolved, CaseRouted, Deadlines
from shared.events.complaints import Classification, ComplaintReceived
from shared.events.vocabulary import Category, Channel, Severity
from shared.logs import JsonFormatter
from shared.tracing import (
    TraceIdLogFilter,
    add_span_processor,
    consuming,
    parse_traceparent,
    publishing,
    server_span,
    trace_id_for,
    trace_id_of,
    with_traceparent,
)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def _complaint(cid: str) -> ComplaintReceived:
    return ComplaintReceived(complaint_id=cid, customer_id="cust-1", channel=Channel.WEB, received_at=datetime.now(UTC),
                             text="broken", classification=Classification(category=Category.OTHER))


def _routed(cid: str) -> CaseRouted:
    now = datetime.now(UTC)
    return CaseRouted(case_id="case-1", complaint_id=cid, customer_id="cust-1", severity=Severity.P3,
                      category=Category.OTHER, queue="product_support", deadlines=Deadlines(), received_at=now,
                      routed_at=now)


def _resolved(cid: str) -> CaseResolved:
    return CaseResolved(case_id="case-1", complaint_id=cid, customer_id="cust-1", severity=Severity.P3,
                        category=Category.OTHER, queue="product_support", resolution_code="fixed",
                        first_handling=True, resolved_at=datetime.now(UTC), resolved_by="agent-1")


def _emit(data, cid: str, subject: str, causation: str | None = None) -> Envelope:  # type: ignore[no-untyped-def]
    return with_traceparent(new_event(data, source="/redress/test", subject=subject, correlation_id=cid,
                                      causation_id=causation))


def test_a_complaint_id_is_its_trace_id() -> None:
    cid = str(uuid.uuid4())
    assert f"{trace_id_for(cid):032x}" == cid.replace("-", "")
    assert trace_id_for("incident-42") == trace_id_for("incident-42") != trace_id_for("incident-43")


def test_complaint_chain_is_one_trace_with_producer_consumer_parentage(spans: InMemorySpanExporter) -> None:
    cid = str(uuid.uuid4())
    trace_hex = cid.replace("-", "")
    # intake: the HTTP request emits the first event, which opens the complaint's trace.
    with server_span("POST", {b"traceparent": b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"}) as request:
        received = _emit(_complaint(cid), cid, subject=cid)
    with publishing() as publish:
        published = publish("redress.complaints.v1", received)
    # routing: the consumer span is the producer span's child; what the handler emits is the consumer's child.
    with consuming(published, "redress.complaints.v1", "redress-routing") as consumer:
        routed = _emit(_routed(cid), cid, subject="case-1", causation=published.id)
    # later, an operator resolves the case in another request (another trace): the event joins the complaint's.
    with server_span("POST", {}) as operator_request:
        resolved = _emit(_resolved(cid), cid, subject="case-1")
    # and a timer, outside any span.
    timer_event = _emit(_routed(cid), cid, subject="case-1")

    assert {trace_id_of(e.traceparent) for e in (received, published, routed, resolved, timer_event)} == {trace_hex}
    finished = {s.context.span_id: s for s in spans.get_finished_spans()}
    producer = finished[parse_traceparent(published.traceparent).span_id]  # type: ignore[union-attr]
    assert producer.kind is SpanKind.PRODUCER
    consumer_span = finished[consumer.get_span_context().span_id]
    assert consumer_span.kind is SpanKind.CONSUMER
    assert consumer_span.parent.span_id == producer.context.span_id
    assert parse_traceparent(routed.traceparent).span_id == consumer_span.context.span_id  # type: ignore[union-attr]
    root = finished[producer.parent.span_id]
    assert root.parent is None and f"{root.context.trace_id:032x}" == trace_hex
    assert root.links[0].context.span_id == request.get_span_context().span_id
    # The intake request continued its caller's trace; the complaint's trace links to it.
    assert f"{request.get_span_context().trace_id:032x}" == "a" * 32
    emit_span = finished[parse_traceparent(resolved.traceparent).span_id]  # type: ignore[union-attr]
    assert emit_span.links[0].context.span_id == operator_request.get_span_context().span_id


def test_existing_traceparent_is_kept(spans: InMemorySpanExporter) -> None:
    env = new_event(_routed("c"), source="/t", subject="s", correlation_id="c",
                    traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    assert with_traceparent(env).traceparent == env.traceparent


def test_without_an_exporter_the_relay_sends_the_emitters_traceparent(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PRODUCER span is made when nothing exports spans; the event still names its trace."""
    monkeypatch.setattr(tracing, "_exporting", False)
    cid = str(uuid.uuid4())
    env = _emit(_complaint(cid), cid, subject=cid)
    with publishing() as publish:
        sent = publish("redress.complaints.v1", env)
    assert sent.traceparent == env.traceparent
    assert trace_id_of(sent.traceparent) == f"{uuid.UUID(cid).int:032x}"


def test_without_an_exporter_an_event_emitted_elsewhere_names_the_complaints_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An operator's request or a timer emits without making a span; the event joins the complaint's trace."""
    tracing.configure_tracing("test")  # an SDK provider is there, as in every service
    monkeypatch.setattr(tracing, "_exporting", False)
    cid = str(uuid.uuid4())
    events = [_emit(_routed(cid), cid, subject="case-1", causation=f"e-{n}") for n in range(3)]
    assert {trace_id_of(e.traceparent) for e in events} == {f"{uuid.UUID(cid).int:032x}"}
    assert len({e.traceparent for e in events}) == 3  # each event its own hop


def test_json_logs_carry_the_trace_id(spans: InMemorySpanExporter) -> None:
    cid = str(uuid.uuid4())
    env = _emit(_complaint(cid), cid, subject=cid)
    record = logging.LogRecord("redress.test", logging.INFO, __file__, 1, "handled", None, None)
    with consuming(env, "redress.complaints.v1", "redress-routing"):
        TraceIdLogFilter().filter(record)
    line = JsonFormatter("routing").format(record)
    assert f'"trace_id": "{cid.replace("-", "")}"' in line


@pytest.mark.parametrize(("name", "says"), [("otlp", "pip install opentelemetry-exporter-otlp-proto-http"),
                                            ("zipkin", "use one of none, console, otlp")])
def test_an_exporter_that_cannot_work_stops_the_start_with_what_to_do(name: str, says: str) -> None:
    import importlib.util

    from shared.tracing import _exporter_processor

    installed = importlib.util.find_spec("opentelemetry.exporter") is not None
    if name == "otlp" and installed:
        pytest.skip("the OTLP exporter is installed here")
    with pytest.raises(SystemExit) as stopped:
        _exporter_processor(name, "test")
    assert says in str(stopped.value)
