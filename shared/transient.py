"""Telling infrastructure failures (retry later) from failures of the input (reject or dead-letter)."""

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

_TRANSIENT_NAMES = frozenset(
    {"CannotConnectNowError", "ConnectionDoesNotExistError", "InterfaceError", "KafkaConnectionError",
     "AdminShutdownError", "ConnectionFailureError", "TooManyConnectionsError"}
)


def is_transient(exc: BaseException) -> bool:
    """True for failures of the database or broker rather than of the request or event."""
    if isinstance(exc, (OperationalError, InterfaceError, ConnectionError, OSError, TimeoutError)):
        return True
    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or type(exc.orig).__name__ in _TRANSIENT_NAMES):
        return True
    return type(exc).__name__ in _TRANSIENT_NAMES
