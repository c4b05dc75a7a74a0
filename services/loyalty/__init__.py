"""Loyalty: points ledger, tiers and their benefits, satisfaction surveys and care follow-ups."""
