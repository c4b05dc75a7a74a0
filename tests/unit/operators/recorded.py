"""A recorded set of complaints and cases, and policy files with pinned figures, for whatif tests."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from services.recovery.policy import DEFAULT_POLICY_PATH as RECOVERY_POLICY
from services.routing.policy import DEFAULT_POLICY_PATH as ROUTING_POLICY
from shared.envelope import Envelope, envelope_to_json, new_event
from shared.events import EventData
from shared.events.cases import CaseAcknowledged, CaseResolved, CaseRouted, Deadlines
from shared.events.complaints import Classification, ComplaintReceived
from shared.events.vocabulary import Category, Channel, CustomerTier, Severity

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday morning


def _event(data: EventData, source: str, correlation_id: str, at: datetime) -> Envelope:
    env = new_event(data, source=f"/redress/{source}", subject=correlation_id, correlation_id=correlation_id)
    return env.model_copy(update={"time": at})


def complaint_chain(
    category: Category,
    tier: CustomerTier,
    *,
    received: datetime,
    acknowledged_after: timedelta,
    resolved_after: timedelta,
    resolution_code: str,
    first_handling: bool = True,
    recorded_severity: Severity = Severity.P3,
) -> list[Envelope]:
    """complaint.received, case.routed, case.acknowledged and case.resolved of one complaint."""
    complaint_id, case_id, customer = str(uuid.uuid4()), str(uuid.uuid4()), f"cust-{uuid.uuid4().hex[:8]}"
    ids = {"case_id": case_id, "complaint_id": complaint_id, "customer_id": customer}
    complaint = ComplaintReceived(
        complaint_id=complaint_id, customer_id=customer, channel=Channel.WEB, received_at=received,
        text="recorded complaint", classification=Classification(category=category),
    )
    routed = CaseRouted(
        **ids, severity=recorded_severity, category=category, queue="product_support", customer_tier=tier,
        deadlines=Deadlines(), received_at=received, routed_at=received + timedelta(seconds=2),
    )
    acknowledged = CaseAcknowledged(
        **ids, by="agent-1", at=received + acknowledged_after, first_response_seconds=acknowledged_after.total_seconds()
    )
    resolved = CaseResolved(
        **ids, severity=recorded_severity, category=category, queue="product_support", customer_tier=tier,
        resolution_code=resolution_code, first_handling=first_handling, resolved_at=received + resolved_after,
        resolved_by="agent-1",
    )
    return [
        _event(complaint, "intake", complaint_id, received),
        _event(routed, "routing", complaint_id, received + timedelta(seconds=2)),
        _event(acknowledged, "routing", complaint_id, received + acknowledged_after),
        _event(resolved, "routing", complaint_id, received + resolved_after),
    ]


def write_events(path: Path, envelopes: list[Envelope]) -> Path:
    """JSON lines, as `redress watch --json` writes them."""
    path.write_text("".join(envelope_to_json(e) + "\n" for e in envelopes), encoding="utf-8")
    return path


def _deep_update(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def policy_file(path: Path, packaged: Path, changes: dict[str, Any]) -> Path:
    """The packaged policy with ``changes`` applied (nested keys merged), written to ``path``."""
    data = yaml.safe_load(packaged.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump(_deep_update(data, json.loads(json.dumps(changes)))), encoding="utf-8")
    return path


# The routing figures the expectations depend on, pinned whatever the packaged file says.
ROUTING_PINNED: dict[str, Any] = {
    "version": "test-live",
    "tiers": {
        "P1": {"label": "critical", "first_response": "30m", "next_update": "1h", "resolution": "8h"},
        "P2": {"label": "urgent", "first_response": "2h", "next_update": "4h", "resolution": "24h"},
        "P3": {"label": "normal", "first_response": "4h", "next_update": "12h", "resolution": "2d"},
        "P4": {"label": "low", "first_response": "8h", "next_update": "1d", "resolution": "3d"},
    },
    "severity": {
        "category_base": {"product_usage": "P3", "account_anomaly": "P2", "service_complaint": "P3",
                          "policy_question": "P4", "other": "P3"},
        "customer_tier": {"high_value": {"raise": 1, "up_to": "P2"}, "mid_value": {"raise": 1, "up_to": "P3"}},
    },
    "ladder": {"levels": ["agent", "supervisor", "manager"], "severity_steps": 1},
}


def _options(*options: dict[str, Any], default: str | None = None) -> dict[str, Any]:
    return {"options": list(options), "default": default}


def _coupon(amount: int) -> dict[str, Any]:
    return {"id": "coupon", "kind": "coupon_amount", "amount_minor": amount}


def _credit(amount: int) -> dict[str, Any]:
    return {"id": "credit", "kind": "account_credit", "amount_minor": amount}


_ROW = {"P1": _options(_credit(5000)), "P2": _options(_credit(5000)), "P3": _options(_coupon(2000)),
        "P4": _options()}
RECOVERY_PINNED: dict[str, Any] = {
    "version": "test-live",
    "min_option_value_minor": 500,
    "no_compensation_resolution_codes": ["duplicate"],
    "matrix": {
        "high_value": {**_ROW, "P2": _options(_credit(10000))},
        "mid_value": {**_ROW, "P3": _options(_coupon(3000))},
        "potential": _ROW,
    },
    "modifiers": {"sla_breached_uplift_percent": 20, "repeat_complaints": {"threshold": 2, "uplift_percent": 25},
                  "first_handling_failed_uplift_percent": 15, "max_total_uplift_percent": 50},
    "sla_breach": {"compensate_at_once": True, "clocks": ["first_response", "resolution"],
                   "remedies": {t.value: _options(_coupon(2000)) for t in CustomerTier}},
    "caps": {"window_days": 30, "high_value": {"max_value_minor": 100000, "max_count": 5},
             "mid_value": {"max_value_minor": 50000, "max_count": 4},
             "potential": {"max_value_minor": 30000, "max_count": 3}},
    "approvals": {"automatic_role": "agent", "limits_minor": {"agent": 20000, "supervisor": 100000,
                                                              "manager": 500000}},
}


def live_policies(tmp: Path) -> tuple[Path, Path]:
    """Routing and recovery policies standing in for the live ones."""
    routing = policy_file(tmp / "routing-live.yaml", ROUTING_POLICY, ROUTING_PINNED)
    recovery = policy_file(tmp / "recovery-live.yaml", RECOVERY_POLICY, RECOVERY_PINNED)
    return routing, recovery


def recorded_set() -> list[Envelope]:
    """Three complaints of three customers: a product question, a stolen account, a policy question."""
    return [
        *complaint_chain(Category.PRODUCT_USAGE, CustomerTier.POTENTIAL, received=START,
                         acknowledged_after=timedelta(minutes=80), resolved_after=timedelta(hours=10),
                         resolution_code="replaced"),
        *complaint_chain(Category.ACCOUNT_ANOMALY, CustomerTier.HIGH_VALUE, received=START + timedelta(minutes=5),
                         acknowledged_after=timedelta(minutes=30), resolved_after=timedelta(hours=5),
                         resolution_code="account_restored"),
        *complaint_chain(Category.POLICY_QUESTION, CustomerTier.MID_VALUE, received=START + timedelta(minutes=10),
                         acknowledged_after=timedelta(hours=2), resolved_after=timedelta(hours=6),
                         resolution_code="policy_explained"),
    ]
