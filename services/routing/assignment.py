"""Assignment: which queue owns a case, and where a hand-off really lands.

Rules, in order: a complaint involving the green channel's minimum number of
departments (2) goes to the green channel; one department goes to that
department's queue; none goes to the category's queue. A case handed off more
than ``max_reassignments`` times goes to the green channel, whatever was asked.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from services.routing.policy import RoutingPolicy
from shared.events.complaints import ComplaintReceived


class QueueChoice(BaseModel):
    """A queue and why it was chosen."""

    model_config = ConfigDict(frozen=True)

    queue: str
    reason: str


def choose_queue(complaint: ComplaintReceived, policy: RoutingPolicy) -> QueueChoice:
    """The queue for a new complaint."""
    departments = list(dict.fromkeys(complaint.classification.departments))
    green = policy.green_channel
    if len(departments) >= green.min_departments:
        names = ", ".join(d.value for d in departments)
        return QueueChoice(queue=green.queue, reason=f"{len(departments)} departments involved ({names})")
    if departments:
        return QueueChoice(queue=policy.queue_of(departments[0]), reason=f"department {departments[0].value}")
    category = complaint.classification.category
    return QueueChoice(queue=policy.category_queues[category], reason=f"no department named; category {category.value}")


def handoff_destination(requested: str, handoffs_so_far: int, policy: RoutingPolicy) -> QueueChoice:
    """Where a hand-off lands: the requested queue, or the green channel once reassigned too often."""
    if requested not in policy.queues:
        raise ValueError(f"unknown queue {requested!r}")
    green = policy.green_channel
    count = handoffs_so_far + 1
    if count > green.max_reassignments and requested != green.queue:
        return QueueChoice(
            queue=green.queue, reason=f"hand-off {count} exceeds {green.max_reassignments} reassignments: green channel"
        )
    return QueueChoice(queue=requested, reason="requested")
