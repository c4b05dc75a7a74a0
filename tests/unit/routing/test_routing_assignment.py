"""Queue choice by rules, and where a hand-off lands."""

from collections.abc import Callable
from typing import Any

import pytest

from services.routing.assignment import choose_queue, handoff_destination
from services.routing.policy import RoutingPolicy
from shared.events.complaints import ComplaintReceived

QUEUE_TABLE: list[tuple[dict[str, Any], str]] = [
    ({"category": "product_usage"}, "product_support"),
    ({"category": "account_anomaly"}, "accounts_security"),
    ({"category": "service_complaint"}, "product_support"),
    ({"category": "policy_question"}, "policy_desk"),
    ({"category": "other"}, "product_support"),
    ({"category": "product_usage", "departments": ("billing",)}, "billing"),
    ({"category": "account_anomaly", "departments": ("logistics",)}, "logistics"),
    ({"departments": ("billing", "billing")}, "billing"),
    ({"departments": ("billing", "logistics")}, "green_channel"),
    ({"departments": ("billing", "logistics", "accounts_security")}, "green_channel"),
]


@pytest.mark.parametrize(("fields", "queue"), QUEUE_TABLE)
def test_queue_by_rules(
    fields: dict[str, Any], queue: str, policy: RoutingPolicy, make_complaint: Callable[..., ComplaintReceived]
) -> None:
    choice = choose_queue(make_complaint(**fields), policy)
    assert choice.queue == queue
    assert choice.reason


def test_green_channel_reason_names_the_departments(
    policy: RoutingPolicy, make_complaint: Callable[..., ComplaintReceived]
) -> None:
    choice = choose_queue(make_complaint(departments=("billing", "logistics")), policy)
    assert choice.reason == "2 departments involved (billing, logistics)"


@pytest.mark.parametrize(
    ("so_far", "requested", "lands"),
    [
        (0, "billing", "billing"),
        (1, "logistics", "logistics"),
        (2, "billing", "green_channel"),
        (5, "billing", "green_channel"),
        (0, "green_channel", "green_channel"),
    ],
)
def test_handoff_lands_in_the_green_channel_after_two_reassignments(
    so_far: int, requested: str, lands: str, policy: RoutingPolicy
) -> None:
    assert handoff_destination(requested, so_far, policy).queue == lands


def test_handoff_to_an_unknown_queue(policy: RoutingPolicy) -> None:
    with pytest.raises(ValueError, match="unknown queue 'mars'"):
        handoff_destination("mars", 0, policy)
