"""Recovery: compensation by customer tier, approvals, budgets, offers and incident-wide recovery."""
