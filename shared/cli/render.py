"""One readable line per event: time, service, type, customer, complaint and the key facts of its data."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shared.cli.common import Palette
from shared.envelope import Envelope
from shared.logs import mask_personal_data
from shared.stream import StreamItem
from shared.topics import Topic

Facts = Callable[[dict[str, Any]], str]

_FAMILY_STYLE = {
    "complaint": "cyan", "case": "yellow", "compensation": "magenta", "incident": "magenta",
    "loyalty": "green", "survey": "green", "care": "green", "order": "blue",
}
_SEVERITY_STYLE = {"P1": "bright_red", "P2": "red", "P3": "yellow", "P4": None}


def _clock(value: Any) -> str:
    """``HH:MM`` (with the date when not today) of an ISO timestamp."""
    try:
        moment = datetime.fromisoformat(str(value)).astimezone(UTC)
    except ValueError:
        return str(value)
    today = datetime.now(UTC).date()
    return moment.strftime("%H:%M" if moment.date() == today else "%m-%d %H:%M")


def _span(seconds: Any) -> str:
    """``3m12s`` from a number of seconds."""
    total = int(float(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def money(amount_minor: Any, currency: Any = "CNY") -> str:
    """``200.00 CNY`` from integer minor units."""
    amount = int(amount_minor or 0)
    return f"{amount // 100:,}.{amount % 100:02d} {currency or ''}".strip()


def _remedy(remedy: dict[str, Any] | None) -> str:
    if not remedy:
        return "-"
    if remedy.get("description"):
        return str(remedy["description"])
    if remedy.get("kind") == "points":
        return f"{remedy.get('points', 0)} points"
    return f"{remedy.get('kind')} {money(remedy.get('amount_minor'), remedy.get('currency'))}"


def _text(value: Any, width: int = 60) -> str:
    """A complaint's words, personal data masked, on one line and cut to ``width``."""
    text = " ".join(mask_personal_data(str(value or "")).split())
    return f'"{text[: width - 1]}…"' if len(text) > width else f'"{text}"'


def _complaint(d: dict[str, Any]) -> str:
    cls = d.get("classification") or {}
    cues = ",".join(cls.get("urgency_cues") or [])
    parts = [str(d.get("channel")), str(cls.get("category"))]
    parts += [f"cues {cues}"] if cues else []
    parts += [f"reach {d['exposure']['reach']}"] if (d.get("exposure") or {}).get("public") else []
    return " ".join(parts) + " " + _text(d.get("text"))


FACTS: dict[str, Facts] = {
    "complaint.received.v1": _complaint,
    "complaint.followed_up.v1": lambda d: f"{d['channel']} follow-up #{d.get('follow_up_count', 1)} {_text(d['text'])}",
    "case.routed.v1": lambda d: f"{d['severity']} -> {d['queue']} tier {d.get('customer_tier')}" + (
        f", first response by {_clock(due)}" if (due := (d.get("deadlines") or {}).get("first_response_due")) else ""
    ),
    "case.acknowledged.v1": lambda d: f"by {d['by']}, first response after {_span(d['first_response_seconds'])}",
    "case.sla_warning.v1": lambda d: f"{d['severity']} {d['clock']} due {_clock(d['due_at'])}",
    "case.sla_breached.v1": lambda d: f"{d['severity']} {d['clock']} deadline {_clock(d['due_at'])} passed",
    "case.escalated.v1": lambda d: (
        f"{d['from_level']} -> {d['to_level']}, {d['from_severity']} -> {d['to_severity']}: {d['reason']}"
    ),
    "case.handed_off.v1": lambda d: (
        f"{d['from_queue']} -> {d['to_queue']} after {_span(d['handoff_seconds'])}: {d['reason']}"
    ),
    "case.paused.v1": lambda d: f"waiting on {d['waiting_on']}",
    "case.resumed.v1": lambda d: f"clocks run again after {_span(d['paused_seconds'])}",
    "case.resolved.v1": lambda d: (
        f"{d['severity']} {d['resolution_code']} by {d['resolved_by']}"
        f"{', first handling' if d.get('first_handling') else ''}{', SLA breached' if d.get('sla_breached') else ''}"
    ),
    "case.reopened.v1": lambda d: f"by {d['by']}: {d['reason']}",
    "compensation.offered.v1": lambda d: (
        f"{len(d['options'])} option(s), default {d['default_option_id']} ({d['reason']}), "
        f"until {_clock(d['expires_at'])}"
    ),
    "compensation.pending_approval.v1": lambda d: f"{_remedy(d['remedy'])} needs a {d['required_role']}",
    "compensation.issued.v1": lambda d: f"{_remedy(d['remedy'])} ({d['reason']}, {d.get('customer_tier')})",
    "compensation.rejected.v1": lambda d: f"rejected by {d['rejected_by']}",
    "compensation.reversed.v1": lambda d: f"{_remedy(d['remedy'])} reversed by {d['reversed_by']}",
    "incident.declared.v1": lambda d: f"{d['title']}: {_remedy(d['remedy'])} each",
    "incident.completed.v1": lambda d: f"{d['issued']} issued, {d['failed']} failed",
    "loyalty.points_changed.v1": lambda d: f"{d['points']:+d} points ({d['kind']}), balance {d['balance']}",
    "loyalty.tier_changed.v1": lambda d: f"{d.get('from_tier') or 'new'} -> {d['to_tier']}",
    "loyalty.benefit_issued.v1": lambda d: f"{d['benefit']} for {d['period']}",
    "survey.issued.v1": lambda d: f"survey {d['survey_id'][:8]} until {_clock(d['expires_at'])}",
    "survey.answered.v1": lambda d: " ".join(
        f"{k.upper()} {d[k]}" for k in ("csat", "nps", "ces") if d.get(k) is not None
    ) + (" LOW" if d.get("low_score") else ""),
    "care.followup_due.v1": lambda d: f"day {d['day']} care follow-up",
    "care.churn_risk.v1": lambda d: "signals " + ", ".join(d.get("signals") or []),
    "order.completed.v1": lambda d: f"order {d['order_id']} {money(d['amount_minor'], d.get('currency'))}",
    "order.refunded.v1": lambda d: f"refund {d['order_id']} {money(d['amount_minor'], d.get('currency'))}",
}


def facts(env: Envelope) -> str:
    """The key facts of an event's data; a generic summary for types this tool does not know."""
    try:
        return FACTS[env.type](env.data)
    except (KeyError, TypeError, ValueError, AttributeError):
        scalars = [f"{k}={v}" for k, v in env.data.items() if isinstance(v, str | int | float | bool)]
        return " ".join(scalars[:6])


def service_of(env: Envelope) -> str:
    """``/redress/intake`` -> ``intake``."""
    return env.source.rstrip("/").rsplit("/", 1)[-1]


def _time(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    if moment.date() == datetime.now(UTC).date():
        return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return moment.strftime("%m-%d %H:%M:%S")


def event_line(env: Envelope, paint: Palette) -> str:
    """The readable line of one event."""
    style = _FAMILY_STYLE.get(env.type.split(".", 1)[0])
    severity = env.data.get("severity") or env.data.get("to_severity")
    fact = facts(env)
    if severity in _SEVERITY_STYLE:
        fact = fact.replace(str(severity), paint(str(severity), _SEVERITY_STYLE[severity]), 1)
    if "breached" in env.type:
        fact = paint(fact, "red")
    return "  ".join(
        [
            paint(_time(env.time), "dim"),
            f"{service_of(env):<8}",
            paint(f"{env.type:<32}", style),
            f"{env.partitionkey[:18]:<18}",
            paint(env.correlationid[:8], "bold"),
            fact,
        ]
    )


def _parse_time(value: str | None) -> datetime:
    try:
        moment = datetime.fromisoformat(value or "")
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def dead_letter_line(item: StreamItem, paint: Palette) -> str:
    """The line of a dead-lettered message: where it came from and why it was given up."""
    h = item.headers
    origin = f"{h.get('dlq_source_topic', '?')}[{h.get('dlq_source_partition', '?')}]@{h.get('dlq_source_offset', '?')}"
    kind = item.envelope.type if item.envelope else h.get("ce_type", "malformed")
    moment = item.envelope.time if item.envelope else _parse_time(h.get("dlq_at"))
    return "  ".join(
        [
            paint(_time(moment), "dim"),
            paint("DLQ", "bright_red"),
            paint(f"{kind:<32}", "red"),
            f"{(item.key or '-')[:18]:<18}",
            f"{item.partition}:{item.offset} from {origin} by {h.get('dlq_consumer', '?')}:",
            paint(h.get("dlq_error", "")[:200], "red"),
        ]
    )


def malformed_line(item: StreamItem, paint: Palette) -> str:
    """The line of a message that is not a valid event at all."""
    where = f"{item.topic}[{item.partition}]@{item.offset}"
    return paint(f"malformed message on {where}: {item.error}", "red")


def is_dead_letter(item: StreamItem) -> bool:
    """Whether the message was read from the dead-letter topic."""
    return item.topic == Topic.DEAD_LETTER.value
