"""Which events ``redress watch`` shows: by type, customer, complaint, severity, queue, or one followed complaint.

Severity and queue are learned per complaint from the events that carry them (``case.routed.v1``,
escalations, hand-offs), so ``--severity P1`` also shows the acknowledgement and the compensation of
a P1 case, not only the events that repeat its severity.
"""

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from shared.envelope import Envelope

MIN_PREFIX = 8  # a shorter id prefix would match unrelated complaints
_ID_FIELDS = ("complaint_id", "case_id", "compensation_id", "survey_id")


def id_matches(value: Any, wanted: str) -> bool:
    """An id equals ``wanted`` or starts with it (a prefix of at least 8 characters, as watch prints)."""
    if not isinstance(value, str) or not value:
        return False
    return value == wanted or (len(wanted) >= MIN_PREFIX and value.startswith(wanted))


def split_values(values: list[str] | None) -> list[str]:
    """Options given several times or comma-separated, as one list."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


@dataclass
class EventFilter:
    """The watch filters; ``observe`` every event before asking ``matches``."""

    types: list[str] = field(default_factory=list)
    customers: set[str] = field(default_factory=set)
    complaints: list[str] = field(default_factory=list)
    severities: set[str] = field(default_factory=set)
    queues: set[str] = field(default_factory=set)
    follow: str | None = None
    severity_of: dict[str, str] = field(default_factory=dict)
    queue_of: dict[str, str] = field(default_factory=dict)
    followed: set[str] = field(default_factory=set)

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return bool(self.types or self.customers or self.complaints or self.severities or self.queues or self.follow)

    def observe(self, env: Envelope) -> None:
        """Learn a complaint's severity and queue, and the correlation id of a followed case or complaint."""
        data = env.data
        severity = data.get("to_severity") or data.get("severity")
        if isinstance(severity, str):
            self.severity_of[env.correlationid] = severity
        queue = data.get("to_queue") or data.get("queue")
        if isinstance(queue, str):
            self.queue_of[env.correlationid] = queue
        if self.follow and self._names(env, self.follow):
            self.followed.add(env.correlationid)

    def matches(self, env: Envelope) -> bool:
        """Whether the event passes every filter that is set."""
        if self.follow and env.correlationid not in self.followed:
            return False
        if self.types and not any(fnmatch.fnmatchcase(env.type, pattern) for pattern in self.types):
            return False
        if self.customers and not ({env.partitionkey, env.data.get("customer_id")} & self.customers):
            return False
        if self.complaints and not any(self._names(env, wanted) for wanted in self.complaints):
            return False
        if self.severities and self.severity_of.get(env.correlationid) not in self.severities:
            return False
        return not (self.queues and self.queue_of.get(env.correlationid) not in self.queues)

    @staticmethod
    def _names(env: Envelope, wanted: str) -> bool:
        """The event belongs to the complaint or case ``wanted`` names (by id or prefix)."""
        candidates = [env.correlationid, env.subject, *(env.data.get(name) for name in _ID_FIELDS)]
        return any(id_matches(value, wanted) for value in candidates)
