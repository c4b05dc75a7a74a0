"""Errors as RFC 9457 problem+json, with field paths for validation errors.

Raise ``ProblemError`` from any route; validation errors, HTTP errors, unavailable
infrastructure and unexpected errors are all answered in the same shape.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.transient import is_transient

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://redress.dev/problems/"


class FieldError(BaseModel):
    """One invalid field: its path (``body.customer.email``) and what is wrong."""

    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=[PROBLEM_BASE + "validation"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    """An error answered as problem+json; ``code`` names the problem type."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        code: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.code = code or title.lower().replace(" ", "-")
        self.errors = errors
        self.headers = headers or {}


def problem_response(request: Request, err: ProblemError) -> JSONResponse:
    """Render a ProblemError."""
    body = Problem(
        type=PROBLEM_BASE + err.code,
        title=err.title,
        status=err.status,
        detail=err.detail,
        instance=str(request.url.path),
        errors=err.errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=err.status, media_type=PROBLEM_JSON, headers=err.headers
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _on_problem(request: Request, exc: ProblemError) -> JSONResponse:
    return problem_response(request, exc)


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [FieldError(field=_field_path(e["loc"]), message=e["msg"]) for e in exc.errors()]
    summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    return problem_response(
        request, ProblemError(422, "Validation failed", summary, code="validation", errors=errors)
    )


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    title = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized", 403: "Forbidden"}.get(
        exc.status_code, "HTTP error"
    )
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(request, ProblemError(exc.status_code, title, str(exc.detail), headers=headers))


def _allowed_methods(request: Request) -> list[str]:
    """Every method of every route on this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path) and getattr(route, "methods", None):
            methods |= set(route.methods)
    return sorted(methods)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    if is_transient(exc):
        log.warning("dependency unavailable on %s: %s", request.url.path, exc)
        return problem_response(
            request,
            ProblemError(
                503, "Service unavailable", "A dependency is unavailable; retry shortly.",
                code="unavailable", headers={"Retry-After": "2"},
            ),
        )
    log.exception("unexpected error on %s", request.url.path)
    err = ProblemError(500, "Internal error", "An unexpected error occurred.", code="internal")
    return problem_response(request, err)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem+json."""
    app.add_exception_handler(ProblemError, _on_problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem+json answers."""
    return {s: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": "Problem details"} for s in statuses}
