"""Routing's tables: cases (with their three clocks), their history, hand-offs and the tier projection."""

import sqlalchemy as sa

from shared.db import UtcDateTime, add_delivery_tables

metadata = sa.MetaData()
delivery = add_delivery_tables(metadata)
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
OPEN_STATES = ("new", "open", "waiting")
# The states spelled as SQL literals, exactly as in the partial index's predicate: a query whose
# filter reads the same lets the planner prove the index applies (a bound parameter list cannot).
OPEN_STATE_SQL = "state IN (" + ", ".join(f"'{state}'" for state in OPEN_STATES) + ")"

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("complaint_id", sa.String(40), nullable=False, unique=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("category", sa.String(40), nullable=False),
    sa.Column("severity", sa.String(4), nullable=False),
    sa.Column("initial_severity", sa.String(4), nullable=True),
    sa.Column("queue", sa.String(40), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("level", sa.String(20), nullable=False, server_default="agent"),
    sa.Column("customer_tier", sa.String(20), nullable=False),
    sa.Column("owner", sa.String(100), nullable=True),
    sa.Column("assignee", sa.String(100), nullable=True),
    sa.Column("channel", sa.String(20), nullable=True),
    sa.Column("subject", sa.String(300), nullable=True),
    sa.Column("excerpt", sa.Text, nullable=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("routed_at", UtcDateTime, nullable=False),
    sa.Column("acknowledged_at", UtcDateTime, nullable=True),
    # The three clocks' current deadlines (null while paused), and the earliest warning and deadline
    # of the clocks still running: what the queue sorts and filters on.
    sa.Column("first_response_due", UtcDateTime, nullable=True),
    sa.Column("next_update_due", UtcDateTime, nullable=True),
    sa.Column("resolution_due", UtcDateTime, nullable=True),
    sa.Column("next_warn_at", UtcDateTime, nullable=True),
    sa.Column("next_due_at", UtcDateTime, nullable=True),
    sa.Column("resolved_at", UtcDateTime, nullable=True),
    sa.Column("resolution_code", sa.String(60), nullable=True),
    sa.Column("first_handling", sa.Boolean, nullable=True),
    sa.Column("sla_breached", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("complex", sa.Boolean, nullable=False, server_default=sa.false()),
    # Figures read these measures directly, so they stay one SQL aggregate on any backend.
    sa.Column("routed_seconds", sa.Float, nullable=True),
    sa.Column("first_response_seconds", sa.Float, nullable=True),
    sa.Column("handoff_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reopen_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("escalations", sa.Integer, nullable=False, server_default="0"),
    sa.Column("follow_ups", sa.Integer, nullable=False, server_default="0"),
    sa.Column("pause_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("paused_seconds", sa.Float, nullable=False, server_default="0"),
    sa.Column("policy_version", sa.String(40), nullable=True),
    sa.Column("snapshot", sa.JSON, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=True),
    sa.Index("ix_cases_queue_state_next_due", "queue", "state", "next_due_at"),
    # Open cases by deadline, of one queue (the queue page) and of all (the board): read in page
    # order, so a page costs its own rows instead of sorting every open case.
    sa.Index(
        "ix_cases_open_queue_due",
        "queue",
        "next_due_at",
        "id",
        postgresql_where=sa.text(OPEN_STATE_SQL),
        sqlite_where=sa.text(OPEN_STATE_SQL),
    ),
    sa.Index(
        "ix_cases_open_due",
        "next_due_at",
        "id",
        postgresql_where=sa.text(OPEN_STATE_SQL),
        sqlite_where=sa.text(OPEN_STATE_SQL),
    ),
    sa.Index("ix_cases_customer", "customer_id", "received_at"),
    sa.Index("ix_cases_routed_at", "routed_at"),
)

case_history = sa.Table(
    "case_history",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(40), nullable=False, index=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),  # "action" (who did what) or "event" (what was published)
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("by", sa.String(100), nullable=True),
    sa.Column("role", sa.String(20), nullable=True),
    sa.Column("event_id", sa.String(64), nullable=True),
    sa.Column("detail", sa.JSON, nullable=False),
)

handoffs = sa.Table(
    "handoffs",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(40), nullable=False, index=True),
    sa.Column("from_queue", sa.String(40), nullable=False),
    sa.Column("to_queue", sa.String(40), nullable=False),
    sa.Column("requested_queue", sa.String(40), nullable=False),
    sa.Column("from_owner", sa.String(100), nullable=True),
    sa.Column("to_owner", sa.String(100), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("requested_by", sa.String(100), nullable=False),
    sa.Column("requested_at", UtcDateTime, nullable=False),
    sa.Column("taken_by", sa.String(100), nullable=True),
    sa.Column("taken_at", UtcDateTime, nullable=True),
    sa.Column("handoff_seconds", sa.Float, nullable=True),
    sa.Index("ix_handoffs_taken_at", "taken_at"),
)

customer_tiers = sa.Table(
    "customer_tiers",
    metadata,
    sa.Column("customer_id", sa.String(100), primary_key=True),
    sa.Column("tier", sa.String(20), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
