"""Routing's tables."""

import sqlalchemy as sa

from shared.db import UtcDateTime, add_delivery_tables

metadata = sa.MetaData()
delivery = add_delivery_tables(metadata)

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("complaint_id", sa.String(40), nullable=False, unique=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("category", sa.String(40), nullable=False),
    sa.Column("severity", sa.String(4), nullable=False),
    sa.Column("queue", sa.String(40), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("customer_tier", sa.String(20), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("routed_at", UtcDateTime, nullable=False),
    sa.Column("first_response_due", UtcDateTime, nullable=False),
    sa.Column("resolution_due", UtcDateTime, nullable=False),
    sa.Column("resolved_at", UtcDateTime, nullable=True),
    sa.Column("resolution_code", sa.String(60), nullable=True),
    sa.Index("ix_cases_queue_state_due", "queue", "state", "resolution_due"),
    sa.Index("ix_cases_customer", "customer_id"),
)

customer_tiers = sa.Table(
    "customer_tiers",
    metadata,
    sa.Column("customer_id", sa.String(100), primary_key=True),
    sa.Column("tier", sa.String(20), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
