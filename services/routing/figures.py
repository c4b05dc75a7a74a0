"""Routing's figures over a window of routed cases, as SQL aggregates (PostgreSQL and SQLite).

- intake to routed: complaint received until the case was routed;
- first response: received until acknowledged;
- hand-off: requested until the receiving side took the case (hand-offs taken in the window);
- resolution rate: resolved cases among those routed; first-handling rate among those resolved;
- SLA compliance per tier (the tier at routing, so escalations do not move a case between rows)
  and per queue: among cases whose outcome is known (resolved, or breached already), the share
  that met every clock.
"""

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.routing.models import cases, handoffs
from services.routing.policy import RoutingPolicy
from services.routing.schemas import Compliance, Duration, Figures, Rate

_RESOLVED = cases.c.state == "resolved"
_MET = sa.and_(_RESOLVED, sa.not_(cases.c.sla_breached))
_DECIDED = sa.or_(_RESOLVED, cases.c.sla_breached)


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _duration(count: int, avg: float | None, peak: float | None, target: timedelta) -> Duration:
    seconds = target.total_seconds()
    return Duration(
        count=count,
        avg_seconds=None if avg is None else round(avg, 3),
        max_seconds=None if peak is None else round(peak, 3),
        target_seconds=seconds,
        meets_target=None if avg is None else avg <= seconds,
    )


def _rate(numerator: int, denominator: int, target: float) -> Rate:
    rate = _ratio(numerator, denominator)
    return Rate(
        numerator=numerator,
        denominator=denominator,
        rate=rate,
        target=target,
        meets_target=None if rate is None else rate >= target,
    )


async def _compliance(conn: AsyncConnection, window: sa.ColumnElement[bool], column: sa.Column) -> list[Compliance]:
    rows = (
        await conn.execute(
            sa.select(column, _count(_MET), _count(_DECIDED)).where(window).group_by(column).order_by(column)
        )
    ).all()
    return [
        Compliance(group=str(group), met=met, decided=decided, rate=_ratio(met, decided))
        for group, met, decided in rows
    ]


async def compute(conn: AsyncConnection, since: datetime, until: datetime, policy: RoutingPolicy) -> Figures:
    """Every figure for cases routed in ``[since, until)``."""
    window = sa.and_(cases.c.routed_at >= since, cases.c.routed_at < until)
    totals = (
        await conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.avg(cases.c.routed_seconds),
                sa.func.max(cases.c.routed_seconds),
                sa.func.count(cases.c.first_response_seconds),
                sa.func.avg(cases.c.first_response_seconds),
                sa.func.max(cases.c.first_response_seconds),
                _count(_RESOLVED),
                _count(sa.and_(_RESOLVED, cases.c.first_handling.is_(True))),
                sa.func.coalesce(sa.func.sum(cases.c.escalations), 0),
                sa.func.coalesce(sa.func.sum(cases.c.pause_count), 0),
                sa.func.coalesce(sa.func.sum(cases.c.paused_seconds), 0.0),
                _count(_MET),
                _count(_DECIDED),
            ).where(window)
        )
    ).one()
    total, route_avg, route_max, acked, fr_avg, fr_max, resolved, first, escalations, pauses, paused, met, decided = (
        totals
    )
    handoff_window = sa.and_(handoffs.c.taken_at >= since, handoffs.c.taken_at < until)
    h_count, h_avg, h_max = (
        await conn.execute(
            sa.select(
                sa.func.count(), sa.func.avg(handoffs.c.handoff_seconds), sa.func.max(handoffs.c.handoff_seconds)
            ).where(handoff_window)
        )
    ).one()
    kpi = policy.kpi_targets
    return Figures(
        since=since,
        until=until,
        cases=total,
        intake_to_routed=_duration(total, route_avg, route_max, kpi.intake_to_routed),
        first_response=_duration(acked, fr_avg, fr_max, kpi.first_response),
        handoff=_duration(h_count, h_avg, h_max, kpi.handoff),
        resolution_rate=_rate(resolved, total, kpi.resolution_rate),
        first_handling_rate=_rate(first, resolved, kpi.first_handling_rate),
        escalations=int(escalations),
        pauses=int(pauses),
        paused_seconds=float(paused),
        sla_compliance=Compliance(group="all", met=met, decided=decided, rate=_ratio(met, decided)),
        sla_compliance_by_tier=await _compliance(conn, window, cases.c.initial_severity),
        sla_compliance_by_queue=await _compliance(conn, window, cases.c.queue),
    )
