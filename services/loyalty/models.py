"""Loyalty's tables."""

import sqlalchemy as sa

from shared.db import UtcDateTime, add_delivery_tables

metadata = sa.MetaData()
delivery = add_delivery_tables(metadata)

# Append-only points ledger; the balance row is its running total, locked on every change.
points_ledger = sa.Table(
    "points_ledger",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("balance_after", sa.Integer, nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("compensation_id", sa.String(40), nullable=True, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_points_ledger_customer", "customer_id", "created_at"),
)

balances = sa.Table(
    "balances",
    metadata,
    sa.Column("customer_id", sa.String(100), primary_key=True),
    sa.Column("points", sa.Integer, nullable=False),
    sa.CheckConstraint("points >= 0", name="ck_balances_non_negative"),
)
