"""Calls from the console to the four services, on behalf of the signed-in operator.

The operator's own token travels with every call, so each service decides what that operator may
see or do; the console adds no second permission model. ``fetch`` never raises: a view that
combines several services shows what answered and says why the rest did not.
"""

from dataclasses import dataclass
from typing import Any

import httpx

from shared.problems import ProblemError

SERVICES = ("intake", "routing", "recovery", "loyalty")


@dataclass
class Answer:
    """What one service said: its JSON when it succeeded, else the reason it did not."""

    service: str
    path: str
    status: int | None
    data: Any = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True for a 2xx answer with a JSON body."""
        return self.reason is None

    def describe(self) -> dict[str, Any]:
        """Where a figure came from, for the page: source, and the reason when it is unavailable."""
        return {"service": self.service, "path": self.path, "status": self.status, "ok": self.ok,
                "reason": self.reason}


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or "")[:300]
    return ""


def refusal_reason(service: str, method: str, path: str, response: httpx.Response) -> str:
    """A sentence an operator understands for a non-2xx answer."""
    status, detail = response.status_code, _problem_detail(response)
    if status == 404 and detail in ("Not Found", ""):
        # FastAPI's answer for a route that does not exist, as opposed to a resource that does not.
        return f"{service} has no {method} {path} (404): this figure's source is not available in this version"
    if status in (401, 403):
        return f"{service} refused ({status}): {detail or 'not allowed for your role'}"
    return f"{service} answered {status}: {detail or response.reason_phrase}"


class Upstream:
    """One pooled HTTP client for the four services."""

    def __init__(self, urls: dict[str, str], timeout: float) -> None:
        self.urls = urls
        self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def close(self) -> None:
        """Close pooled connections."""
        await self.client.aclose()

    def url(self, service: str, path: str) -> str:
        """Absolute URL of ``path`` (starting with ``/``) on ``service``."""
        if service not in self.urls:
            raise ProblemError(404, "Not found", f"unknown service {service!r}; one of {', '.join(SERVICES)}",
                               code="unknown-service")
        return self.urls[service] + path

    async def send(self, service: str, method: str, path: str, token: str, *, params: Any = None,
                   content: bytes | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        """Forward one request; 502 / 504 problem+json when the service cannot be reached."""
        url = self.url(service, path)
        all_headers = {**(headers or {}), "Authorization": f"Bearer {token}"}
        try:
            return await self.client.request(method, url, params=params, content=content, headers=all_headers)
        except httpx.TimeoutException:
            raise ProblemError(504, "Upstream timeout", f"{service} did not answer {method} {path} in time",
                               code="upstream-timeout", headers={"Retry-After": "2"}) from None
        except httpx.HTTPError as exc:
            raise ProblemError(502, "Upstream unavailable", f"{service} is unreachable at {self.urls[service]}: "
                               f"{type(exc).__name__}", code="upstream-unavailable",
                               headers={"Retry-After": "2"}) from None

    async def fetch(self, service: str, path: str, token: str, params: Any = None) -> Answer:
        """GET JSON from a service; the Answer carries the reason when it failed."""
        try:
            response = await self.send(service, "GET", path, token, params=params)
        except ProblemError as exc:
            return Answer(service, path, None, reason=exc.detail)
        if not response.is_success:
            return Answer(service, path, response.status_code,
                          reason=refusal_reason(service, "GET", path, response))
        try:
            return Answer(service, path, response.status_code, data=response.json())
        except ValueError:
            return Answer(service, path, response.status_code, reason=f"{service} answered {path} without JSON")

    async def ready(self, service: str) -> Answer:
        """The service's readiness answer."""
        try:
            response = await self.client.get(self.url(service, "/readyz"), timeout=3)
        except httpx.HTTPError as exc:
            return Answer(service, "/readyz", None, reason=f"unreachable: {type(exc).__name__}")
        if response.status_code != 200:
            return Answer(service, "/readyz", response.status_code, reason=_problem_detail(response) or "not ready")
        return Answer(service, "/readyz", 200, data=response.json())
