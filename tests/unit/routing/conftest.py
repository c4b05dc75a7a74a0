"""Builders shared by routing's unit tests: the default policy, complaints and cases."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from services.routing.case import CaseSnapshot
from services.routing.lifecycle import route
from services.routing.policy import RoutingPolicy, load_policy
from shared.events.complaints import ComplaintReceived
from shared.events.vocabulary import CustomerTier

# Monday 2026-11-23 08:00 UTC (16:00 in Shanghai).
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def policy() -> RoutingPolicy:
    """The packaged default policy."""
    return load_policy()


def build_complaint(
    category: str = "product_usage",
    cues: tuple[str, ...] = (),
    sentiment: str = "neutral",
    score: float = 0.0,
    departments: tuple[str, ...] = (),
    public: bool = False,
    reach: int = 0,
    repeats: int = 0,
    received_at: datetime = T0,
) -> ComplaintReceived:
    """A complaint.received.v1 payload with the signals the tier function reads."""
    data: dict[str, Any] = {
        "complaint_id": "cmp-1",
        "customer_id": "cust-1",
        "channel": "social" if public else "app",
        "received_at": received_at,
        "text": "my order is broken",
        "repeat_contacts_30d": repeats,
        "exposure": {"public": public, "reach": reach, "platform": "weibo" if public else None},
        "classification": {
            "category": category,
            "urgency_cues": list(cues),
            "sentiment": sentiment,
            "sentiment_score": score,
            "departments": list(departments),
        },
    }
    return ComplaintReceived.model_validate(data)


@pytest.fixture
def make_case(policy: RoutingPolicy) -> Callable[..., CaseSnapshot]:
    """Route a complaint built from keyword arguments and return the new case."""

    def build(tier: CustomerTier = CustomerTier.POTENTIAL, **kwargs: Any) -> CaseSnapshot:
        return route(build_complaint(**kwargs), tier, "case-1", kwargs.get("received_at", T0), policy).case

    return build


@pytest.fixture
def make_complaint() -> Callable[..., ComplaintReceived]:
    """Build a complaint.received.v1 payload from keyword arguments."""
    return build_complaint


@pytest.fixture
def t0() -> datetime:
    """The moment test complaints arrive."""
    return T0
