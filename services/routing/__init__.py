"""Routing service: severity tiers, SLA clocks, escalation ladders and case queues."""
