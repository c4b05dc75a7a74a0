"""Intake's tables."""

import sqlalchemy as sa

from shared.db import UtcDateTime, add_delivery_tables

metadata = sa.MetaData()
delivery = add_delivery_tables(metadata)

complaints = sa.Table(
    "complaints",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("external_ref", sa.String(200), nullable=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("category", sa.String(40), nullable=False),
    sa.Column("status", sa.String(40), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("channel", "external_ref", name="uq_complaints_channel_ref"),
    sa.Index("ix_complaints_customer_received", "customer_id", "received_at"),
)
