"""Operator authentication: HS256 bearer tokens carrying a subject and a role.

Every operator action is taken by an ``Operator`` (who and which role); a route asks for the
least role it needs with ``require_role``. 401 for a missing, invalid or expired token, 403 for
a role below what the action needs.
"""

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from fastapi import Request
from pydantic import BaseModel

from shared.events.vocabulary import ROLE_RANK, Role
from shared.problems import ProblemError

ISSUER = "redress"


class Operator(BaseModel):
    """An authenticated operator."""

    subject: str
    role: Role

    def may(self, role: Role) -> bool:
        """True when this operator's role is at least ``role``."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def issue_token(secret: str, subject: str, role: Role, ttl: timedelta = timedelta(hours=8)) -> str:
    """A signed operator token."""
    now = datetime.now(UTC)
    claims = {"sub": subject, "role": role.value, "iss": ISSUER, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm="HS256")


def decode_token(secret: str, token: str) -> Operator:
    """Verify a token; raises ProblemError 401 with the reason."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise _unauthorized("token expired") from None
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"invalid token: {exc}") from None
    try:
        return Operator(subject=claims["sub"], role=Role(claims.get("role")))
    except ValueError:
        raise _unauthorized("token has no valid role") from None


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, "Unauthorized", detail, code="unauthorized", headers={"WWW-Authenticate": "Bearer"})


def operator_from_request(request: Request) -> Operator:
    """The operator of a request's bearer token (401 when absent or invalid)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("missing bearer token")
    return decode_token(request.app.state.runtime.settings.operator_token_secret, token.strip())


def require_role(role: Role) -> Callable[[Request], Coroutine[Any, Any, Operator]]:
    """A FastAPI dependency returning the operator, 403 when their role is below ``role``."""

    async def dependency(request: Request) -> Operator:
        operator = operator_from_request(request)
        request.app.state.runtime.operator_limiter.enforce(operator.subject, f"operator {operator.subject}")
        if not operator.may(role):
            raise ProblemError(
                403, "Forbidden", f"role {operator.role.value} may not do this; needs {role.value}", code="forbidden"
            )
        return operator

    return dependency
