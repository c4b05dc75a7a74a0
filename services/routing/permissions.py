"""Who may do what: the action's lowest role, and the level an escalated case has reached."""

from __future__ import annotations

from services.routing.case import Actor, CaseSnapshot, ForbiddenError
from services.routing.policy import RoutingPolicy
from shared.events.vocabulary import ROLE_RANK, Role


def required_role(action: str, case_level: Role, policy: RoutingPolicy) -> Role:
    """The lowest role allowed to take ``action`` on a case at ``case_level``."""
    minimum = policy.permissions[action]
    return max(minimum, case_level, key=lambda role: ROLE_RANK[role])


def allowed(role: Role, action: str, case_level: Role, policy: RoutingPolicy) -> bool:
    """Whether an operator with ``role`` may take ``action`` on a case at ``case_level``."""
    return ROLE_RANK[role] >= ROLE_RANK[required_role(action, case_level, policy)]


def authorize(case: CaseSnapshot, actor: Actor, action: str, policy: RoutingPolicy) -> None:
    """Raise ForbiddenError unless the actor's role may take ``action`` on this case."""
    if actor.role is None or not allowed(actor.role, action, case.level, policy):
        needed = required_role(action, case.level, policy)
        have = actor.role.value if actor.role else "none"
        raise ForbiddenError(f"{action} on a case at {case.level.value} level needs role {needed.value} (have {have})")
