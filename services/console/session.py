"""Who is signed in: the operator token from the session cookie or an Authorization header.

The console issues an ordinary operator token (``shared.auth.issue_token``) at sign-in and keeps it
in an HttpOnly, SameSite=Strict cookie, so page scripts never hold it and other sites cannot send
it. Scripts may send the same token as a bearer header instead. The token is passed on to the
services, which check the operator's role themselves.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
from fastapi import Request, Response

from shared.auth import Operator, decode_token
from shared.problems import ProblemError

COOKIE = "redress_console"
CSRF_HEADER = "x-redress-console"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class Session:
    """A signed-in operator, their token, and how it reached us."""

    operator: Operator
    token: str
    expires_at: datetime
    from_cookie: bool


def _token(request: Request) -> tuple[str | None, bool]:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    cookie = request.cookies.get(COOKIE)
    return (cookie, True) if cookie else (None, False)


def _expiry(token: str) -> datetime:
    claims = jwt.decode(token, options={"verify_signature": False})
    return datetime.fromtimestamp(int(claims["exp"]), UTC)


async def current_session(request: Request) -> Session:
    """FastAPI dependency: the signed-in operator (401 problem+json when there is none)."""
    token, from_cookie = _token(request)
    if not token:
        raise ProblemError(401, "Unauthorized", "sign in first", code="unauthorized",
                           headers={"WWW-Authenticate": "Bearer"})
    runtime = request.app.state.runtime
    operator = decode_token(runtime.settings.operator_token_secret, token)
    runtime.operator_limiter.enforce(operator.subject, f"operator {operator.subject}")
    return Session(operator, token, _expiry(token), from_cookie)


def require_console_header(request: Request, session: Session) -> None:
    """A cookie-authenticated write must carry the console's header, which other sites cannot add."""
    if session.from_cookie and request.method in UNSAFE_METHODS and request.headers.get(CSRF_HEADER) != "1":
        raise ProblemError(403, "Forbidden", f"writes from a browser session need the {CSRF_HEADER}: 1 header",
                           code="csrf")


def set_session_cookie(response: Response, token: str, max_age: int, secure: bool) -> None:
    """Keep the token in the browser, out of reach of scripts and other sites."""
    response.set_cookie(COOKIE, token, max_age=max_age, httponly=True, samesite="strict", secure=secure, path="/")


def clear_session_cookie(response: Response, secure: bool) -> None:
    """Forget the browser's session."""
    response.delete_cookie(COOKIE, httponly=True, samesite="strict", secure=secure, path="/")
