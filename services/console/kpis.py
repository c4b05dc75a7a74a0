"""KPI figures over a window, gathered from the services that own them.

Routing owns the case figures (times, rates, SLA compliance per tier), loyalty the survey figures
(CSAT%, NPS, CES), recovery the compensation. The console computes nothing itself: it asks each
service for the window as a whole and for a handful of equal buckets of it (the trend lines), and
shows every figure with its target and source. A figure whose source did not answer is listed
as unavailable, with the reason, never filled in.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from services.console.upstream import Answer, Upstream

Window = Literal["1h", "24h", "7d", "30d"]
WINDOWS: dict[str, tuple[timedelta, int]] = {
    "1h": (timedelta(hours=1), 12),
    "24h": (timedelta(hours=24), 12),
    "7d": (timedelta(days=7), 7),
    "30d": (timedelta(days=30), 10),
}
Figure = dict[str, Any]
_DURATIONS = (("intake_to_routed", "Intake to routed"), ("first_response", "First response"),
              ("handoff", "Hand-off"))
_RATES = (("resolution_rate", "Resolution rate"), ("first_handling_rate", "First-handling resolution"))
_SURVEY = (("csat_percent", "CSAT", "%", "higher"), ("nps", "NPS", "", "higher"),
           ("ces_average", "CES", "", "lower"), ("satisfaction", "Satisfaction score", "/5", "higher"))
TIER_ORDER = ("high_value", "mid_value", "potential")
SEVERITIES = ("P1", "P2", "P3", "P4")


def buckets(since: datetime, until: datetime, count: int) -> list[tuple[datetime, datetime]]:
    """``count`` equal consecutive intervals covering [since, until)."""
    step = (until - since) / count
    return [(since + step * i, until if i == count - 1 else since + step * (i + 1)) for i in range(count)]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _unavailable(key: str, label: str, answer: Answer, **extra: Any) -> Figure:
    return {"key": key, "label": label, "available": False, "reason": answer.reason, "source": answer.describe(),
            **extra}


def _trend(answers: list[tuple[tuple[datetime, datetime], Answer]], pick: Any) -> list[dict[str, Any]]:
    points = []
    for (start, end), answer in answers:
        value = pick(answer.data) if answer.ok else None
        points.append({"since": _iso(start), "until": _iso(end), "value": value})
    return points


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def routing_figures(total: Answer, trend: list[tuple[tuple[datetime, datetime], Answer]]) -> list[Figure]:
    """Durations and rates from routing's figures, each with its target and trend."""
    out: list[Figure] = []
    for key, label in _DURATIONS:
        if not total.ok:
            out.append(_unavailable(key, label, total, kind="duration", unit="s"))
            continue
        d = total.data.get(key) or {}
        out.append({"key": key, "label": label, "kind": "duration", "unit": "s", "available": True,
                    "value": d.get("avg_seconds"), "max": d.get("max_seconds"), "count": d.get("count"),
                    "target": d.get("target_seconds"), "better": "lower", "meets_target": d.get("meets_target"),
                    "source": total.describe(), "trend": _trend(trend, lambda x, k=key: _get(x, k, "avg_seconds"))})
    for key, label in _RATES:
        if not total.ok:
            out.append(_unavailable(key, label, total, kind="rate", unit="%"))
            continue
        r = total.data.get(key) or {}
        out.append({"key": key, "label": label, "kind": "rate", "unit": "%", "available": True,
                    "value": r.get("rate"), "numerator": r.get("numerator"), "denominator": r.get("denominator"),
                    "target": r.get("target"), "better": "higher", "meets_target": r.get("meets_target"),
                    "source": total.describe(), "trend": _trend(trend, lambda x, k=key: _get(x, k, "rate"))})
    return out


def survey_figures(total: Answer, trend: list[tuple[tuple[datetime, datetime], Answer]],
                   satisfaction_target: float) -> list[Figure]:
    """CSAT%, NPS, CES and the weighted satisfaction score from loyalty's satisfaction report."""
    out: list[Figure] = []
    for key, label, unit, better in _SURVEY:
        if not total.ok:
            out.append(_unavailable(key, label, total, kind="score", unit=unit))
            continue
        overall = total.data.get("overall") or {}
        value = overall.get(key)
        target = satisfaction_target if key == "satisfaction" else None
        out.append({"key": key, "label": label, "kind": "score", "unit": unit, "available": True, "value": value,
                    "count": overall.get("responses"), "target": target, "better": better,
                    "meets_target": None if target is None or value is None else value >= target,
                    "source": total.describe(), "trend": _trend(trend, lambda x, k=key: _get(x, "overall", k))})
    return out


def compliance_chart(total: Answer) -> Figure:
    """SLA compliance per severity tier (the tier at routing), from routing's figures."""
    key, label = "sla_compliance_by_tier", "SLA compliance per tier"
    if not total.ok:
        return _unavailable(key, label, total, kind="bars", unit="%")
    overall = total.data.get("sla_compliance") or {}
    rows = {row.get("group"): row for row in total.data.get("sla_compliance_by_tier") or []}
    # Every tier gets a bar (an empty one when no case of it has a known outcome yet).
    groups = [*SEVERITIES, *sorted(g for g in rows if g not in SEVERITIES and g not in (None, "None"))]
    bars = [{"label": g, "value": rows.get(g, {}).get("rate"),
             "detail": f"{rows.get(g, {}).get('met', 0)}/{rows.get(g, {}).get('decided', 0)}"} for g in groups]
    return {"key": key, "label": label, "kind": "bars", "unit": "%", "available": True, "bars": bars,
            "overall": overall.get("rate"), "source": total.describe()}


def csat_by_tier_chart(total: Answer) -> Figure:
    """CSAT% per customer tier, from loyalty's report grouped by tier."""
    key, label = "csat_by_customer_tier", "CSAT per customer tier"
    if not total.ok:
        return _unavailable(key, label, total, kind="bars", unit="%")
    groups = total.data.get("groups") or {}
    order = [*TIER_ORDER, *sorted(set(groups) - set(TIER_ORDER))]
    bars = [{"label": tier, "value": groups.get(tier, {}).get("csat_percent"),
             "detail": f"{groups.get(tier, {}).get('responses', 0)} answers"} for tier in order]
    return {"key": key, "label": label, "kind": "bars", "unit": "pct", "available": True, "bars": bars,
            "source": total.describe()}


def compensation_chart(answer: Answer) -> Figure:
    """Compensation issued per customer tier (money and points), from recovery."""
    key, label = "compensation_by_tier", "Compensation spent per customer tier"
    if answer.status == 404 and answer.reason and "has no GET" in answer.reason:
        answer.reason = ("recovery does not report spend per customer tier over a window yet (no GET /v1/figures); "
                         "its compensation listing needs a customer, case or incident")
    if not answer.ok:
        return _unavailable(key, label, answer, kind="money")
    rows = answer.data.get("by_tier") if isinstance(answer.data, dict) else None
    if not isinstance(rows, list):
        return {"key": key, "label": label, "kind": "money", "available": False, "source": answer.describe(),
                "reason": f"recovery's {answer.path} has no per-tier totals (by_tier)"}
    ordered = sorted(rows, key=lambda r: TIER_ORDER.index(r.get("customer_tier")) if r.get("customer_tier")
                     in TIER_ORDER else len(TIER_ORDER))
    bars = [{"label": r.get("customer_tier") or "unknown", "value": r.get("value_minor"),
             "currency": r.get("currency"), "points": r.get("points"), "count": r.get("count"),
             "detail": f"{r.get('count', 0)} issued"} for r in ordered]
    return {"key": key, "label": label, "kind": "money", "available": True, "bars": bars, "source": answer.describe()}


def budget_chart(answer: Answer) -> Figure:
    """This month's compensation spent per department against its budget, from recovery's budgets."""
    key, label = "budget_by_department", "Compensation budget used this month, per department"
    if not answer.ok:
        return _unavailable(key, label, answer, kind="money")
    rows = [r for r in answer.data if isinstance(r, dict) and (r.get("monthly_minor") or r.get("spent_minor"))]
    bars = [{"label": r.get("department"), "value": r.get("spent_minor"), "currency": r.get("currency"),
             "budget": r.get("monthly_minor"), "reserved": r.get("reserved_minor"),
             "detail": f"{round(100 * r['spent_minor'] / r['monthly_minor'])}% of budget" if r.get("monthly_minor")
             else "no budget"} for r in rows]
    month = rows[0].get("month") if rows else None
    return {"key": key, "label": label, "kind": "money", "available": True, "bars": bars, "month": month,
            "source": answer.describe()}


async def build_kpis(upstream: Upstream, token: str, window: str, satisfaction_target: float,
                     until: datetime | None = None) -> dict[str, Any]:
    """Every KPI of the window ending now (or at ``until``)."""
    span, count = WINDOWS[window]
    end = until or datetime.now(UTC)
    start = end - span
    parts = buckets(start, end, count)

    def window_params(a: datetime, b: datetime, **extra: str) -> dict[str, str]:
        return {"since": _iso(a), "until": _iso(b), **extra}

    calls = [
        upstream.fetch("routing", "/v1/figures", token, window_params(start, end)),
        upstream.fetch("loyalty", "/v1/satisfaction", token, window_params(start, end)),
        upstream.fetch("loyalty", "/v1/satisfaction", token, window_params(start, end, group_by="tier")),
        upstream.fetch("recovery", "/v1/figures", token, window_params(start, end)),
        upstream.fetch("recovery", "/v1/budgets", token),
        *(upstream.fetch("routing", "/v1/figures", token, window_params(a, b)) for a, b in parts),
        *(upstream.fetch("loyalty", "/v1/satisfaction", token, window_params(a, b)) for a, b in parts),
    ]
    answers = await asyncio.gather(*calls)
    routing, loyalty, loyalty_tiers, recovery, budgets = answers[:5]
    routing_trend = list(zip(parts, answers[5:5 + count], strict=True))
    loyalty_trend = list(zip(parts, answers[5 + count:], strict=True))
    return {
        "window": window,
        "since": _iso(start),
        "until": _iso(end),
        "buckets": count,
        "figures": [*routing_figures(routing, routing_trend),
                    *survey_figures(loyalty, loyalty_trend, satisfaction_target)],
        "charts": [compliance_chart(routing), csat_by_tier_chart(loyalty_tiers), compensation_chart(recovery),
                   budget_chart(budgets)],
        "cases": routing.data.get("cases") if routing.ok else None,
    }
