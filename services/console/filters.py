"""What a live-stream client asked to see, and the facts that decide whether an event matches.

Severity and queue live on case events only. So that an operator watching "P1" or one queue also
sees the compensation, points and survey of those complaints, the console remembers, per
complaint (correlation id), the latest severity and queue its case events announced
(``ChainBook``); an event matches when its own data or its complaint's case has the value.
"""

import fnmatch
import json
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from services.console.facts import key_facts
from shared.events.vocabulary import Severity
from shared.stream import StreamItem
from shared.topics import Topic

ItemKind = Literal["event", "dead_letter", "malformed"]
DEAD_LETTER_TYPE = "dead-letter"


@dataclass
class LiveEvent:
    """One message as the console shows it."""

    seq: int
    kind: ItemKind
    type: str
    topic: str
    partition: int
    offset: int
    id: str | None = None
    source: str | None = None
    time: str | None = None
    subject: str | None = None
    correlationid: str | None = None
    causationid: str | None = None
    customer: str | None = None
    severity: str | None = None
    queue: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    facts: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> str:
        """The JSON sent to browsers."""
        return json.dumps(asdict(self), ensure_ascii=False, default=str, separators=(",", ":"))

    def belongs_to(self, wanted: str) -> bool:
        """True when this event is part of the complaint (or case) ``wanted`` names, by id or id prefix."""
        candidates = [self.correlationid, self.subject, *(self.data.get(name) for name in _ID_FIELDS)]
        return any(id_matches(value, wanted) for value in candidates)


def own_severity(data: dict[str, Any]) -> str | None:
    """The severity an event's data states (the new one for an escalation)."""
    value = data.get("to_severity") or data.get("severity")
    return str(value) if value else None


def own_queue(data: dict[str, Any]) -> str | None:
    """The queue an event's data states (the destination for a hand-off)."""
    value = data.get("to_queue") or data.get("queue")
    return str(value) if value else None


class ChainBook:
    """Latest severity and queue per complaint, for the most recent ``capacity`` complaints."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._chains: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()

    def learn(self, correlation_id: str | None, data: dict[str, Any]) -> None:
        """Remember what a case event says about its complaint."""
        severity, queue = own_severity(data), own_queue(data)
        if not correlation_id or not (severity or queue):
            return
        old_severity, old_queue = self._chains.pop(correlation_id, (None, None))
        self._chains[correlation_id] = (severity or old_severity, queue or old_queue)
        while len(self._chains) > self.capacity:
            self._chains.popitem(last=False)

    def lookup(self, correlation_id: str | None) -> tuple[str | None, str | None]:
        """(severity, queue) last known for a complaint."""
        return self._chains.get(correlation_id or "", (None, None))


_GLOB = frozenset("*?[")
_ID_FIELDS = ("complaint_id", "case_id", "compensation_id", "survey_id")
MIN_PREFIX = 8  # as ``redress watch``: a shorter id prefix would match unrelated complaints


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def type_matches(name: str, wanted: str) -> bool:
    """A glob (``case.*``, as ``redress watch --type``), the exact type, or a prefix (``case``, ``case.routed``)."""
    if _GLOB & set(wanted):
        return fnmatch.fnmatchcase(name, wanted)
    return name == wanted or name.startswith(wanted + ".")


def id_matches(value: Any, wanted: str) -> bool:
    """An id equals ``wanted`` or starts with it (a prefix of at least 8 characters)."""
    if not isinstance(value, str) or not value:
        return False
    return value == wanted or (len(wanted) >= MIN_PREFIX and value.startswith(wanted))


@dataclass(frozen=True)
class StreamFilter:
    """Filters of the live stream, with ``redress watch``'s meaning; empty means everything.

    ``types`` are globs (``case.*``) or prefixes (``case``, ``case.routed`` and ``case.routed.v1`` all
    match ``case.routed.v1``); ``dead-letter`` selects dead-lettered messages. ``complaint`` matches
    the complaint's events by its id, its case's id, or a prefix of 8 characters or more.
    """

    types: tuple[str, ...] = ()
    customer: str | None = None
    complaint: str | None = None
    severity: Severity | None = None
    queue: str | None = None

    @classmethod
    def build(cls, types: str | None = None, customer: str | None = None, complaint: str | None = None,
              severity: Severity | None = None, queue: str | None = None) -> "StreamFilter":
        """A filter from query-string values (comma-separated types)."""
        return cls(_split(types), customer or None, complaint or None, severity, queue or None)

    def _type_matches(self, event: LiveEvent) -> bool:
        if not self.types:
            return True
        name = DEAD_LETTER_TYPE if event.kind == "dead_letter" else event.type
        return any(type_matches(name, t) for t in self.types)

    def matches(self, event: LiveEvent) -> bool:
        """True when ``event`` passes every filter."""
        if self.customer and self.customer not in (event.customer, event.data.get("customer_id")):
            return False
        if self.complaint and not event.belongs_to(self.complaint):
            return False
        if self.severity and event.severity != self.severity.value:
            return False
        if self.queue and self.queue not in (event.queue, event.data.get("from_queue")):
            return False
        return self._type_matches(event)


def _raw_data(value: bytes | None) -> dict[str, Any]:
    try:
        data = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return {"raw": (value or b"")[:500].decode("utf-8", errors="replace")}
    return data if isinstance(data, dict) else {"raw": data}


def to_live(item: StreamItem, seq: int, book: ChainBook | None = None) -> LiveEvent:
    """A broker message as the console shows it; ``book`` learns from case events and fills gaps."""
    base = {"seq": seq, "topic": item.topic, "partition": item.partition, "offset": item.offset}
    env = item.envelope
    if item.topic == str(Topic.DEAD_LETTER) or env is None:
        headers = item.headers
        dead = item.topic == str(Topic.DEAD_LETTER)
        return LiveEvent(
            **base, kind="dead_letter" if dead else "malformed", type=headers.get("ce_type") or "unknown",
            id=headers.get("ce_id"), source=headers.get("ce_source"),
            time=headers.get("dlq_at") or headers.get("ce_time"),
            correlationid=headers.get("ce_correlationid"), customer=item.key, data=_raw_data(item.value),
            error=headers.get("dlq_error") if dead else item.error,
        )
    if book is not None:
        book.learn(env.correlationid, env.data)
    known_severity, known_queue = book.lookup(env.correlationid) if book else (None, None)
    event = LiveEvent(
        **base, kind="event", type=env.type, id=env.id, source=env.source, time=env.time.isoformat(),
        subject=env.subject, correlationid=env.correlationid, causationid=env.causationid,
        customer=env.partitionkey, data=env.data,
        severity=own_severity(env.data) or known_severity, queue=own_queue(env.data) or known_queue,
    )
    event.facts = key_facts(event.type, event.data)
    return event
