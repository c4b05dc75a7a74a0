"""Intake's tables: complaints with their messages and status timeline, the contact directory, used signatures."""

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
    sa.Column("subject", sa.Text, nullable=True),
    sa.Column("order_ref", sa.String(64), nullable=True),
    sa.Column("provisional_customer", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("classification", sa.JSON, nullable=True),
    sa.Column("exposure", sa.JSON, nullable=True),
    sa.Column("contact", sa.JSON, nullable=True),
    sa.Column("channel_details", sa.JSON, nullable=True),
    sa.Column("attachments", sa.JSON, nullable=True),
    sa.Column("text_truncated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("occurred_at", UtcDateTime, nullable=True),
    sa.Column("backfill", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("repeat_contacts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("follow_up_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_message_at", UtcDateTime, nullable=True),
    sa.Column("status_at", UtcDateTime, nullable=True),
    sa.Column("case_id", sa.String(64), nullable=True),
    sa.UniqueConstraint("channel", "external_ref", name="uq_complaints_channel_ref"),
    sa.Index("ix_complaints_customer_received", "customer_id", "received_at"),
    sa.Index("ix_complaints_customer_last_message", "customer_id", "last_message_at"),
)

# Every accepted message: the one that opened a complaint and each follow-up. Its (channel, external ref) is
# unique, so a re-sent message is recognised whichever complaint it belongs to, and its first answer replayed.
messages = sa.Table(
    "complaint_messages",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("complaint_id", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("external_ref", sa.String(200), nullable=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("order_ref", sa.String(64), nullable=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("answer", sa.JSON, nullable=False),
    sa.UniqueConstraint("channel", "external_ref", name="uq_messages_channel_ref"),
    sa.Index("ix_messages_customer_received", "customer_id", "received_at"),
    sa.Index("ix_messages_complaint", "complaint_id"),
)

timeline = sa.Table(
    "complaint_timeline",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("complaint_id", sa.String(40), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(40), nullable=True),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.UniqueConstraint("event_id", name="uq_timeline_event"),
    sa.Index("ix_timeline_complaint_at", "complaint_id", "at"),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("provisional", sa.Boolean, nullable=False),
    sa.Column("merged_into", sa.String(100), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_customers_merged_into", "merged_into"),
)

contacts = sa.Table(
    "customer_contacts",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("value", sa.String(320), primary_key=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_contacts_customer", "customer_id"),
)

used_signatures = sa.Table(
    "used_signatures",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(100), nullable=False),
    sa.Column("seen_at", UtcDateTime, nullable=False),
    sa.Index("ix_used_signatures_seen", "seen_at"),
)
