"""Recovery's tables."""

import sqlalchemy as sa

from shared.db import UtcDateTime, add_delivery_tables

metadata = sa.MetaData()
delivery = add_delivery_tables(metadata)

# Append-only: a reversal is a new row, never an edit.
compensation_ledger = sa.Table(
    "compensation_ledger",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("case_id", sa.String(40), nullable=True),
    sa.Column("reason", sa.String(30), nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("issued_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("case_id", "reason", name="uq_ledger_case_reason"),
    sa.Index("ix_ledger_customer", "customer_id", "issued_at"),
)
