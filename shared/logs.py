"""JSON logs carrying the service name, the correlation id and the trace id; masking of personal data."""

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+)")
_PHONE = re.compile(r"\+?\d[\d\s-]{6,}(\d{2})")


def mask_email(value: str) -> str:
    """``alice@example.com`` -> ``a***@example.com``."""
    return _EMAIL.sub(r"\1***@\2", value)


def mask_phone(value: str) -> str:
    """Keep only the last two digits of a phone number."""
    return _PHONE.sub(r"***\1", value)


def mask_text(value: str, keep: int = 0) -> str:
    """Hide a message body: its length only (and optionally its first characters)."""
    return f"{value[:keep]}…<{len(value)} chars>"


def mask_personal_data(value: str) -> str:
    """Mask every email and phone number inside a free string."""
    return mask_phone(mask_email(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with personal data masked in the message."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": mask_personal_data(record.getMessage()),
        }
        correlation_id = correlation_id_var.get()
        if correlation_id:
            entry["correlation_id"] = correlation_id
        for key in ("event_type", "event_id", "trace_id", "status", "path", "duration_ms"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["error"] = mask_personal_data(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(service: str, level: str) -> None:
    """Send every logger's records to stdout as JSON."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
