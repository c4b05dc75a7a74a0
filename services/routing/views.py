"""What operators see of a case: built from its row and its pure snapshot."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from services.routing.case import CaseSnapshot
from services.routing.policy import RoutingPolicy
from services.routing.schemas import CaseOut, PendingHandOffOut, Risk
from services.routing.store import snapshot_of


def risk_of(case: CaseSnapshot, next_warn_at: datetime | None, now: datetime) -> Risk:
    """Breached once any clock passed a deadline; at risk once a running clock passed its warning share.

    ``next_warn_at`` is the row's stored earliest warning (``store.clock_bounds`` at the case's last
    change), the column the ``risk`` filter reads: a case is shown at risk exactly when the filter
    finds it, and a page of cases does not walk every clock's working time a second time.
    """
    if case.sla_breached():
        return "breached"
    if case.status == "resolved":
        return "on_track"
    return "at_risk" if next_warn_at is not None and next_warn_at <= now else "on_track"


def case_out(row: sa.RowMapping | dict[str, Any], now: datetime, policy: RoutingPolicy) -> CaseOut:
    """A case as the API shows it."""
    case = snapshot_of(row)
    pending = case.pending_handoff
    waiting = case.pauses[-1].waiting_on if case.status == "waiting" and case.pauses else None
    return CaseOut(
        case_id=case.case_id,
        complaint_id=case.complaint_id,
        customer_id=case.customer_id,
        state=case.status,
        severity=case.severity,
        initial_severity=row["initial_severity"],
        severity_reasons=case.severity_reasons,
        complex=case.complex,
        level=case.level,
        queue=case.queue,
        owner=case.owner,
        assignee=case.assignee,
        category=case.category,
        customer_tier=case.customer_tier,
        risk=risk_of(case, row["next_warn_at"], now),
        waiting_on=waiting,
        clocks=case.views(now, policy),
        pending_handoff=PendingHandOffOut(**pending.model_dump()) if pending else None,
        handoff_count=case.handoff_count,
        reopen_count=case.reopen_count,
        escalations=case.escalations,
        follow_ups=case.follow_ups,
        received_at=case.received_at,
        routed_at=case.routed_at,
        acknowledged_at=case.acknowledged_at,
        resolved_at=case.resolved_at,
        resolution_code=case.resolution_code,
        first_handling=case.first_handling,
        sla_breached=case.sla_breached(),
        paused_seconds=case.paused_time(now).total_seconds(),
        channel=row["channel"],
        subject=row["subject"],
        excerpt=row["excerpt"],
        policy_version=case.policy_version,
    )
