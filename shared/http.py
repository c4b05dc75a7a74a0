"""ASGI middleware shared by every service: request metrics and trace spans, correlation ids, body size limit."""

import json
import time
import uuid

from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logs import correlation_id_var
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.problems import PROBLEM_BASE, PROBLEM_JSON
from shared.tracing import finish_server_span, server_span

CORRELATION_HEADER = b"x-correlation-id"

# ServiceMiddleware makes each request's SERVER span and metrics. The web framework's own telemetry,
# on by default once a tracer provider is installed, would add a second request span in a trace of
# its own and spans around each dependency and endpoint: twice the traces, paid on every request.
NO_FRAMEWORK_TELEMETRY: TelemetryConfig = {
    "tracing": False, "metrics": False, "logs": False, "operation_spans": False, "auto_configure": False,
}


class ServiceMiddleware:
    """Counts and times requests, carries ``X-Correlation-Id``, and answers 413 to oversized bodies."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await self._too_large(scope, send)
            return
        correlation_id = headers.get(CORRELATION_HEADER, b"").decode("latin-1")[:100] or str(uuid.uuid4())
        token = correlation_id_var.set(correlation_id)
        started = time.perf_counter()
        status = 500
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise _BodyTooLarge
            return message

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (CORRELATION_HEADER, correlation_id.encode())]
            await send(message)

        with server_span(scope["method"], headers) as span:
            try:
                await self.app(scope, limited_receive, send_with_status)
            except _BodyTooLarge:
                await self._too_large(scope, send)
                status = 413
            finally:
                correlation_id_var.reset(token)
                route = scope.get("route")
                path = getattr(route, "path", "unmatched")
                finish_server_span(span, scope["method"], path, status)
                HTTP_REQUESTS.labels(scope["method"], path, str(status)).inc()
                HTTP_LATENCY.labels(scope["method"], path).observe(time.perf_counter() - started)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        body = json.dumps(
            {
                "type": PROBLEM_BASE + "payload-too-large",
                "title": "Payload too large",
                "status": 413,
                "detail": f"request body exceeds {self.max_body_bytes} bytes",
                "instance": scope.get("path", ""),
            }
        ).encode()
        await send(
            {"type": "http.response.start", "status": 413,
             "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]}
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
