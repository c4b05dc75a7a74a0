"""A complaint's full story: every event of its chain, read from the broker from the beginning.

Every event of one complaint carries the complaint id as its correlation id, so the scan reads
each topic from its first offset to the end it had when the scan started and keeps the
messages whose ``ce_correlationid`` header matches (decoding only those). The scan is bounded in
messages and time; a story cut short says so.
"""

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from services.console.filters import LiveEvent, to_live
from services.console.upstream import Answer
from shared.stream import EventStream, to_item
from shared.topics import EVENT_TOPICS, Topic

_CORRELATION_HEADER = "ce_correlationid"


@dataclass
class Scan:
    """The events found for one complaint, and how much of the broker was read."""

    events: list[LiveEvent] = field(default_factory=list)
    scanned: int = 0
    complete: bool = True
    note: str | None = None

    def describe(self) -> dict[str, Any]:
        """Scan facts for the page."""
        return {"scanned": self.scanned, "matched": len(self.events), "complete": self.complete, "note": self.note}


def _matches(headers: list[tuple[str, bytes]] | None, wanted: bytes) -> bool:
    return any(name == _CORRELATION_HEADER and value == wanted for name, value in headers or [])


async def scan_complaint(bootstrap: str, complaint_id: str, max_messages: int, timeout: float) -> Scan:
    """Read every topic from the beginning and keep the events of ``complaint_id``."""
    scan = Scan()
    wanted = complaint_id.encode()
    stream = EventStream(bootstrap, [*map(str, EVENT_TOPICS), str(Topic.DEAD_LETTER)], from_beginning=True)
    deadline = time.monotonic() + timeout
    await asyncio.wait_for(stream.start(), timeout)
    try:
        consumer = stream.consumer
        ends: dict[TopicPartition, int] = await consumer.end_offsets(list(consumer.assignment()))
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            if time.monotonic() > deadline or scan.scanned >= max_messages:
                scan.complete = False
                scan.note = f"stopped after reading {scan.scanned} messages; the story may miss older events"
                break
            batches = await consumer.getmany(*remaining, timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    scan.scanned += 1
                    if record.offset < ends[tp] and _matches(record.headers, wanted):
                        scan.events.append(to_live(to_item(record), len(scan.events) + 1))
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await stream.stop()
    scan.events.sort(key=lambda e: (e.time or "", e.topic, e.offset))
    return scan


def _of(events: list[LiveEvent], *prefixes: str) -> list[LiveEvent]:
    return [e for e in events if e.type.startswith(prefixes)]


def identities(complaint_id: str, events: list[LiveEvent], complaint: dict[str, Any] | None) -> dict[str, str | None]:
    """The customer and case of a complaint, from its events or intake's record."""
    customer = (complaint or {}).get("customer_id")
    case_id = None
    for event in events:
        customer = customer or event.data.get("customer_id") or event.customer
        case_id = case_id or event.data.get("case_id")
    return {"complaint_id": complaint_id, "customer_id": customer, "case_id": case_id}


def _current_case(events: list[LiveEvent], case: dict[str, Any] | None) -> dict[str, Any]:
    """Severity, queue, state and deadlines: routing's record when it answered, else the latest events."""
    facts: dict[str, Any] = {}
    for event in _of(events, "case."):
        data = event.data
        for key in ("severity", "queue", "customer_tier", "owner", "category"):
            if data.get(key):
                facts[key] = data[key]
        if data.get("to_severity"):
            facts["severity"] = data["to_severity"]
        if data.get("to_queue"):
            facts["queue"] = data["to_queue"]
        if event.type.startswith("case.routed"):
            facts.update(data.get("deadlines") or {})
        facts["state"] = event.type.split(".")[1]
    if case:
        facts.update({k: v for k, v in case.items() if not isinstance(v, dict | list) and v is not None})
    return facts


def _data(answer: Answer | None) -> dict[str, Any] | None:
    return answer.data if answer is not None and answer.ok and isinstance(answer.data, dict) else None


def _rows(answer: Answer | None) -> list[dict[str, Any]]:
    """The rows of a listing answer (a list, or a page with ``items`` / ``ledger`` / ``entries``)."""
    if answer is None or not answer.ok:
        return []
    data = answer.data
    for key in ("ledger", "items"):  # loyalty's view nests its ledger page: {"ledger": {"items": [...]}}
        if isinstance(data, dict):
            data = data.get(key, data)
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def assemble(ids: dict[str, str | None], scan: Scan, answers: dict[str, Answer | None]) -> dict[str, Any]:
    """The story page's document: summary, timeline, hand-offs, compensation, points, surveys."""
    events = scan.events
    complaint = _data(answers.get("intake"))
    case = _data(answers.get("routing"))
    case_id = ids["case_id"]
    compensation_ids = {e.data.get("compensation_id") for e in _of(events, "compensation.")} - {None}
    points_rows = [r for r in _rows(answers.get("loyalty"))
                   if (case_id and r.get("case_id") == case_id) or r.get("compensation_id") in compensation_ids]
    decisions = [r for r in _rows(answers.get("recovery")) if case_id and r.get("case_id") == case_id]
    ledger = [r for r in _rows(answers.get("recovery_ledger")) if case_id and r.get("case_id") == case_id]
    return {
        **ids,
        "complaint": complaint,
        "case": _current_case(events, case),
        "timeline": [_timeline_entry(e) for e in events],
        # Routing's records also hold hand-offs not yet taken up; the events are the fallback.
        "handoffs": (case or {}).get("handoffs") or [e.data for e in _of(events, "case.handed_off")],
        "clocks": (case or {}).get("clocks") or [],
        "earlier_complaints": (case or {}).get("earlier_complaints") or [],
        "escalations": [e.data for e in _of(events, "case.escalated", "case.sla_")],
        "compensation": {"events": [_timeline_entry(e) for e in _of(events, "compensation.")],
                         "decisions": decisions, "ledger": ledger},
        "points": {"events": [e.data for e in _of(events, "loyalty.points_changed")], "ledger": points_rows},
        "surveys": [{"type": e.type, "time": e.time, **e.data} for e in _of(events, "survey.")],
        "care": [{"type": e.type, "time": e.time, **e.data} for e in _of(events, "care.")],
        "dead_letters": [_timeline_entry(e) for e in events if e.kind != "event"],
        "sources": {name: a.describe() for name, a in answers.items() if a is not None},
        "scan": scan.describe(),
    }


def _timeline_entry(event: LiveEvent) -> dict[str, Any]:
    return {"time": event.time, "type": event.type, "kind": event.kind, "source": event.source, "id": event.id,
            "causationid": event.causationid, "facts": event.facts, "data": event.data, "error": event.error,
            "topic": event.topic, "offset": event.offset}
