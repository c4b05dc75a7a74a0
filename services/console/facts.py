"""The key facts of an event's data, as short label/value pairs an operator reads at a glance."""

from collections.abc import Callable
from typing import Any

Facts = list[tuple[str, str]]
_TEXT_PREVIEW = 90


def _money(minor: Any, currency: Any) -> str:
    try:
        return f"{int(minor) / 100:,.2f} {currency or ''}".strip()
    except (TypeError, ValueError):
        return str(minor)


def _preview(text: Any) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= _TEXT_PREVIEW else flat[: _TEXT_PREVIEW - 1] + "…"


def _seconds(value: Any) -> str:
    seconds = float(value or 0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m {seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h {seconds % 3600 // 60:02.0f}m"


def _when(value: Any) -> str:
    """An ISO timestamp shortened to minutes, in UTC as sent."""
    text = str(value or "")
    return f"{text[:10]} {text[11:16]} UTC" if len(text) >= 16 and text[10] == "T" else text


def _remedy(remedy: Any) -> str:
    if not isinstance(remedy, dict):
        return ""
    kind = str(remedy.get("kind", ""))
    if remedy.get("points"):
        return f"{kind} {remedy['points']} pts"
    if remedy.get("percent"):
        return f"{kind} {remedy['percent']}%"
    if remedy.get("amount_minor"):
        return f"{kind} {_money(remedy['amount_minor'], remedy.get('currency'))}"
    return kind


def _complaint(d: dict[str, Any]) -> Facts:
    cls = d.get("classification") or {}
    cues = ",".join(cls.get("urgency_cues") or [])
    return [("channel", d.get("channel")), ("category", cls.get("category")), ("cues", cues),
            ("text", _preview(d.get("text")))]


def _routed(d: dict[str, Any]) -> Facts:
    return [("severity", d.get("severity")), ("queue", d.get("queue")), ("tier", d.get("customer_tier")),
            ("owner", d.get("owner"))]


def _clock(d: dict[str, Any]) -> Facts:
    return [("clock", d.get("clock")), ("severity", d.get("severity")), ("due", _when(d.get("due_at")))]


def _escalated(d: dict[str, Any]) -> Facts:
    return [("severity", f"{d.get('from_severity')}→{d.get('to_severity')}"),
            ("level", f"{d.get('from_level')}→{d.get('to_level')}"), ("reason", d.get("reason"))]


def _handed_off(d: dict[str, Any]) -> Facts:
    return [("queue", f"{d.get('from_queue')}→{d.get('to_queue')}"), ("reason", d.get("reason")),
            ("took", _seconds(d.get("handoff_seconds")))]


def _resolved(d: dict[str, Any]) -> Facts:
    return [("code", d.get("resolution_code")), ("first handling", "yes" if d.get("first_handling") else "no"),
            ("SLA", "breached" if d.get("sla_breached") else "met"), ("by", d.get("resolved_by"))]


def _compensation(d: dict[str, Any]) -> Facts:
    options = d.get("options") or []
    remedy = _remedy(d.get("remedy")) or ", ".join(_remedy(o) for o in options[:3])
    return [("reason", d.get("reason")), ("remedy", remedy), ("tier", d.get("customer_tier")),
            ("needs", d.get("required_role"))]


def _points(d: dict[str, Any]) -> Facts:
    return [("kind", d.get("kind")), ("points", f"{int(d.get('points') or 0):+d}"), ("balance", d.get("balance")),
            ("reason", d.get("reason"))]


def _survey(d: dict[str, Any]) -> Facts:
    return [("CSAT", d.get("csat")), ("NPS", d.get("nps")), ("CES", d.get("ces")),
            ("low", "yes" if d.get("low_score") else None)]


_BY_TYPE: dict[str, Callable[[dict[str, Any]], Facts]] = {
    "complaint.received": _complaint,
    "complaint.followed_up": lambda d: [("channel", d.get("channel")), ("follow-ups", d.get("follow_up_count")),
                                        ("text", _preview(d.get("text")))],
    "case.routed": _routed,
    "case.acknowledged": lambda d: [("by", d.get("by")), ("first response", _seconds(d.get("first_response_seconds")))],
    "case.sla_warning": _clock,
    "case.sla_breached": _clock,
    "case.escalated": _escalated,
    "case.handed_off": _handed_off,
    "case.paused": lambda d: [("waiting on", d.get("waiting_on")), ("by", d.get("by"))],
    "case.resumed": lambda d: [("paused", _seconds(d.get("paused_seconds")))],
    "case.resolved": _resolved,
    "case.reopened": lambda d: [("by", d.get("by")), ("reason", d.get("reason"))],
    "compensation": _compensation,
    "incident": lambda d: [("incident", d.get("incident_id")), ("title", d.get("title")),
                           ("issued", d.get("issued")), ("failed", d.get("failed"))],
    "loyalty.points_changed": _points,
    "loyalty.tier_changed": lambda d: [("tier", f"{d.get('from_tier')}→{d.get('to_tier')}"),
                                       ("reason", d.get("reason"))],
    "loyalty.benefit_issued": lambda d: [("benefit", d.get("benefit")), ("period", d.get("period"))],
    "survey.issued": lambda d: [("survey", d.get("survey_id")), ("expires", _when(d.get("expires_at")))],
    "survey.answered": _survey,
    "care.followup_due": lambda d: [("day", d.get("day")), ("due", _when(d.get("due_at")))],
    "care.churn_risk": lambda d: [("signals", ", ".join(d.get("signals") or []))],
    "order": lambda d: [("order", d.get("order_id")), ("amount", _money(d.get("amount_minor"), d.get("currency")))],
}


def _generic(data: dict[str, Any]) -> Facts:
    """The first few plain fields of an event nobody taught the console about."""
    plain = [(k, v) for k, v in data.items() if isinstance(v, str | int | float | bool) and not k.endswith("_id")]
    return [(k, _preview(v)) for k, v in plain[:4]]


def key_facts(event_type: str, data: dict[str, Any]) -> Facts:
    """Label/value pairs for one event; empty values are left out."""
    family = event_type.rsplit(".", 1)[0]
    pick = _BY_TYPE.get(family) or _BY_TYPE.get(family.split(".", 1)[0]) or _generic
    try:
        pairs = pick(data)
    except (TypeError, ValueError, AttributeError):
        pairs = _generic(data)
    return [(label, str(value)) for label, value in pairs if value not in (None, "", [], "None→None")]
