"""Telling infrastructure failures (retry later) from failures of the input (reject or dead-letter)."""

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

_TRANSIENT_NAMES = frozenset(
    {"CannotConnectNowError", "ConnectionDoesNotExistError", "InterfaceError", "KafkaConnectionError",
     "AdminShutdownError", "ConnectionFailureError", "TooManyConnectionsError"}
)


def _causes(exc: BaseException | None) -> list[BaseException]:
    """The exception and what it wraps (SQLAlchemy wraps asyncpg's errors two levels deep)."""
    chain: list[BaseException] = []
    while exc is not None and len(chain) < 6 and exc not in chain:
        chain.append(exc)
        exc = getattr(exc, "orig", None) or exc.__cause__
    return chain


def is_transient(exc: BaseException) -> bool:
    """True for failures of the database or broker rather than of the request or event."""
    for cause in _causes(exc):
        if isinstance(cause, (OperationalError, InterfaceError, ConnectionError, OSError, TimeoutError)):
            return True
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        if type(cause).__name__ in _TRANSIENT_NAMES:
            return True
    return False
