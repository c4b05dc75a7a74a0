"""The tier function on a table of cases, with its reasons."""

from collections.abc import Callable
from itertools import permutations
from typing import Any

import pytest

from services.routing.policy import RoutingPolicy
from services.routing.severity import assess_severity
from shared.events.complaints import ComplaintReceived
from shared.events.vocabulary import CustomerTier

HV, MV, PO = CustomerTier.HIGH_VALUE, CustomerTier.MID_VALUE, CustomerTier.POTENTIAL

# (what the case is, customer tier, complaint fields, expected tier)
TABLE: list[tuple[str, CustomerTier, dict[str, Any], str]] = [
    ("plain product question is regular", PO, {}, "P3"),
    ("policy explanation is low", PO, {"category": "policy_question"}, "P4"),
    ("unknown category is regular", PO, {"category": "other"}, "P3"),
    ("service complaint is regular", PO, {"category": "service_complaint"}, "P3"),
    ("account anomaly is urgent", PO, {"category": "account_anomaly"}, "P2"),
    ("account anomaly with money lost is critical", PO, {"category": "account_anomaly", "cues": ("money_lost",)}, "P1"),
    ("security cue is at least urgent", PO, {"cues": ("security",)}, "P2"),
    ("safety cue is critical", PO, {"category": "policy_question", "cues": ("safety",)}, "P1"),
    ("money lost on a low case floors at urgent", PO, {"category": "policy_question", "cues": ("money_lost",)}, "P2"),
    ("legal threat lifts one step", PO, {"cues": ("legal_threat",)}, "P2"),
    ("high value lifts a low case one step", HV, {"category": "policy_question"}, "P3"),
    ("high value lifts a regular case to urgent", HV, {}, "P2"),
    ("high value alone never makes critical", HV, {"category": "account_anomaly"}, "P2"),
    ("mid value lifts a low case to regular", MV, {"category": "policy_question"}, "P3"),
    ("mid value does not lift a regular case", MV, {}, "P3"),
    ("strongly negative words lift one step", PO, {"sentiment": "negative", "score": -0.8}, "P2"),
    ("mildly negative words do not", PO, {"sentiment": "negative", "score": -0.2}, "P3"),
    ("public post with reach 5,000", PO, {"public": True, "reach": 5000}, "P2"),
    ("public post going viral", PO, {"public": True, "reach": 200_000}, "P1"),
    ("private message with big reach counts nothing", PO, {"public": False, "reach": 200_000}, "P3"),
    ("public post with little reach", PO, {"public": True, "reach": 50}, "P3"),
    ("media threat in the text", PO, {"cues": ("media_exposure",)}, "P2"),
    (
        "media threat and viral post counted once",
        PO,
        {"cues": ("media_exposure",), "public": True, "reach": 200_000},
        "P1",
    ),
    ("one earlier contact", PO, {"repeats": 1}, "P3"),
    ("two earlier contacts", PO, {"repeats": 2}, "P2"),
    ("four earlier contacts on a low case", PO, {"category": "policy_question", "repeats": 4}, "P2"),
    (
        "repeat cue and count counted once",
        PO,
        {"category": "policy_question", "cues": ("repeated_contact",), "repeats": 2},
        "P3",
    ),
    ("two departments", PO, {"departments": ("billing", "logistics")}, "P2"),
    ("one department twice is one department", PO, {"departments": ("billing", "billing")}, "P3"),
    (
        "many lifts stop at their ceiling",
        HV,
        {
            "category": "policy_question",
            "sentiment": "negative",
            "score": -0.9,
            "departments": ("billing", "logistics"),
        },
        "P2",
    ),
    ("high value with a viral post", HV, {"public": True, "reach": 150_000}, "P1"),
    ("high value threatening legal action", HV, {"cues": ("legal_threat",)}, "P1"),
    (
        "stolen account, money gone, high value",
        HV,
        {"category": "account_anomaly", "cues": ("security", "money_lost")},
        "P1",
    ),
]


@pytest.mark.parametrize(("name", "tier", "fields", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_tier_table(
    name: str,
    tier: CustomerTier,
    fields: dict[str, Any],
    expected: str,
    policy: RoutingPolicy,
    make_complaint: Callable[..., ComplaintReceived],
) -> None:
    result = assess_severity(make_complaint(**fields), tier, policy)
    assert result.severity == expected, result.reasons
    assert result.reasons[0].startswith("category ")
    assert result.reasons[-1] == f"result {expected}"


def test_reasons_name_each_rule_applied(
    policy: RoutingPolicy, make_complaint: Callable[..., ComplaintReceived]
) -> None:
    result = assess_severity(make_complaint(public=True, reach=5000, repeats=1), HV, policy)
    assert result.reasons == [
        "category product_usage: base P3",
        "customer tier high_value: +1 step (not beyond P2)",
        "public post with reach 5000: +1 step (not beyond P2)",
        "result P2",
    ]


def test_signal_counted_once_keeps_the_stronger_rule(
    policy: RoutingPolicy, make_complaint: Callable[..., ComplaintReceived]
) -> None:
    result = assess_severity(make_complaint(cues=("media_exposure",), public=True, reach=200_000), PO, policy)
    assert result.reasons == ["category product_usage: base P3", "public post with reach 200000: +2 steps", "result P1"]


def test_floor_is_explained(policy: RoutingPolicy, make_complaint: Callable[..., ComplaintReceived]) -> None:
    result = assess_severity(make_complaint(category="policy_question", cues=("safety",)), PO, policy)
    assert "urgency cue safety: at least P1" in result.reasons


def test_order_of_cues_does_not_matter(policy: RoutingPolicy, make_complaint: Callable[..., ComplaintReceived]) -> None:
    cues = ("money_lost", "legal_threat", "media_exposure", "security")
    outcomes = {
        assess_severity(make_complaint(category="policy_question", cues=order), MV, policy).severity
        for order in permutations(cues)
    }
    assert len(outcomes) == 1


@pytest.mark.parametrize(
    ("fields", "is_complex"),
    [
        ({}, False),
        ({"departments": ("billing", "logistics")}, True),
        ({"repeats": 3}, True),
        ({"repeats": 2}, False),
        ({"cues": ("legal_threat",)}, True),
    ],
)
def test_complex_cases(
    fields: dict[str, Any], is_complex: bool, policy: RoutingPolicy, make_complaint: Callable[..., ComplaintReceived]
) -> None:
    result = assess_severity(make_complaint(**fields), PO, policy)
    assert result.complex is is_complex
    assert bool(result.complex_reasons) is is_complex
