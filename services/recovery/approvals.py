"""The responsibility matrix: who may grant how much, and what going over budget needs.

Approval is judged on the most valuable option, because the customer may pick it.
"""

from __future__ import annotations

from services.recovery.money import fit_remedy, yuan
from services.recovery.policy import RecoveryPolicy
from shared.events.compensation import Remedy
from shared.events.vocabulary import ROLE_RANK, CustomerTier, Role


def fit_top_limit(options: list[Remedy], policy: RecoveryPolicy, tier: CustomerTier) -> tuple[list[Remedy], list[str]]:
    """Options cut to the most senior role's limit: nobody may grant more."""
    top = policy.approvals.top_role
    limit = policy.approvals.limit(top)
    kept: list[Remedy] = []
    notes: list[str] = []
    for option in options:
        fitted = fit_remedy(option, limit, policy, tier)
        if fitted != option:
            notes.append(
                f"approval.top_limit: option {option.option_id} "
                f"{'cut to' if fitted else 'dropped above'} the {top} limit {yuan(limit, policy.currency)}"
            )
        if fitted is not None:
            kept.append(fitted)
    return kept, notes


def senior(a: Role | None, b: Role | None) -> Role | None:
    """The more senior of two roles (None counts as no requirement)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if ROLE_RANK[a] >= ROLE_RANK[b] else b


def required_role(
    max_value_minor: int, acting: Role, budget_left_minor: int | None, policy: RecoveryPolicy
) -> tuple[Role | None, list[str]]:
    """The role that must approve (None when the acting role may grant it alone) and the reasons."""
    cur = policy.currency
    needed = policy.approvals.lowest_role_for(max_value_minor) or policy.approvals.top_role
    notes = [
        f"approval.limit: {yuan(max_value_minor, cur)} is within the {needed} limit "
        f"{yuan(policy.approvals.limit(needed), cur)}"
    ]
    if budget_left_minor is not None and max_value_minor > budget_left_minor:
        over = policy.budgets.over_budget_role
        notes.append(
            f"budget.department: {yuan(max_value_minor, cur)} exceeds the {yuan(max(budget_left_minor, 0), cur)} "
            f"left this month, {over} must approve"
        )
        needed = senior(needed, over) or over
    if ROLE_RANK[acting] >= ROLE_RANK[needed]:
        notes.append(f"approval.none: acting role {acting} may grant it")
        return None, notes
    notes.append(f"approval.required: acting role {acting} may not grant it, {needed} must approve")
    return needed, notes
