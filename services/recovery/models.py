"""Recovery's tables (SQLAlchemy Core).

- `customers`: the tier (and region) projection fed by loyalty.tier_changed.v1; its row is also
  the lock that serializes one customer's compensation decisions, so caps hold under concurrency.
- `cases`: the projection of routing's cases that recovery needs (severity, department, breach).
- `compensations`: one row per (case, reason) or (incident, customer), with its state
  (pending_approval, offered, issued, rejected, reversed; for incidents issued, skipped, failed);
  unique indexes make redelivered events and retried fan-outs harmless.
- `compensation_ledger`: append-only money entries; a reversal is a new entry (a trigger refuses
  UPDATE and DELETE).
- `budgets`: spent and reserved value per department and month; its row is locked while a
  decision reads what is left, so budgets hold under concurrency.
- `incidents`: declared incidents with their segment, remedy, decisions by tier, collection cursor
  and counters; `incident_targets`: the customers still to compensate (a lean queue in arrival order,
  each row deleted in the transaction that issues its compensation).
"""

import sqlalchemy as sa

from shared.db import UtcDateTime, add_delivery_tables

metadata = sa.MetaData()
delivery = add_delivery_tables(metadata)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("customer_id", sa.String(100), primary_key=True),
    sa.Column("tier", sa.String(20), nullable=True),
    sa.Column("region", sa.String(60), nullable=True),
    sa.Column("tier_changed_at", UtcDateTime, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_customers_region", "region", "customer_id"),
    sa.Index("ix_customers_tier", "tier", "customer_id"),
)

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("case_id", sa.String(40), primary_key=True),
    sa.Column("complaint_id", sa.String(40), nullable=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("severity", sa.String(4), nullable=False),
    sa.Column("category", sa.String(40), nullable=True),
    sa.Column("customer_tier", sa.String(20), nullable=True),
    sa.Column("department", sa.String(40), nullable=True),
    sa.Column("queue", sa.String(60), nullable=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("first_handling", sa.Boolean, nullable=True),
    sa.Column("sla_breached", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("resolution_code", sa.String(60), nullable=True),
    sa.Column("correlation_id", sa.String(64), nullable=True),
    sa.Column("routed_at", UtcDateTime, nullable=True),
    sa.Column("resolved_at", UtcDateTime, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_cases_customer_routed", "customer_id", "routed_at"),
)

compensations = sa.Table(
    "compensations",
    metadata,
    sa.Column("compensation_id", sa.String(40), primary_key=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("case_id", sa.String(40), nullable=True),
    sa.Column("incident_id", sa.String(60), nullable=True),
    sa.Column("reason", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("customer_tier", sa.String(20), nullable=True),
    sa.Column("severity", sa.String(4), nullable=True),
    sa.Column("department", sa.String(40), nullable=True),
    sa.Column("budget_month", sa.String(7), nullable=True),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("default_option_id", sa.String(40), nullable=True),
    sa.Column("chosen_option_id", sa.String(40), nullable=True),
    sa.Column("customer_may_choose", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("required_role", sa.String(20), nullable=True),
    sa.Column("acting_role", sa.String(20), nullable=True),
    # While open: the value of the most valuable option (reserved against caps and budget);
    # once issued: the value of the remedy given.
    sa.Column("value_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("policy_version", sa.String(40), nullable=True),
    sa.Column("offer_expires_at", UtcDateTime, nullable=True),
    sa.Column("decided_by", sa.String(100), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("correlation_id", sa.String(64), nullable=True),
    sa.Column("last_event_id", sa.String(64), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # Partial unique indexes: case rows never pay for the incident index and the other way round.
    sa.Index(
        "uq_compensations_case_reason",
        "case_id",
        "reason",
        unique=True,
        postgresql_where=sa.text("case_id IS NOT NULL"),
        sqlite_where=sa.text("case_id IS NOT NULL"),
    ),
    sa.Index(
        "uq_compensations_incident_customer",
        "incident_id",
        "customer_id",
        unique=True,
        postgresql_where=sa.text("incident_id IS NOT NULL"),
        sqlite_where=sa.text("incident_id IS NOT NULL"),
    ),
    sa.Index("ix_compensations_customer_created", "customer_id", "created_at"),
)

# Append-only: a reversal is a new row, never an edit (see the migration's trigger).
compensation_ledger = sa.Table(
    "compensation_ledger",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("compensation_id", sa.String(40), nullable=True),
    sa.Column("entry_kind", sa.String(10), nullable=False, server_default="issue"),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("case_id", sa.String(40), nullable=True),
    sa.Column("incident_id", sa.String(60), nullable=True),
    sa.Column("reason", sa.String(30), nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("option_id", sa.String(40), nullable=True),
    # Signed: an issue is positive, its reversal the same figures negated.
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("percent", sa.Integer, nullable=False, server_default="0"),
    sa.Column("value_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("department", sa.String(40), nullable=True),
    sa.Column("budget_month", sa.String(7), nullable=True),
    sa.Column("actor", sa.String(100), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("reverses_entry_id", sa.String(40), nullable=True),
    sa.Column("issued_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("compensation_id", "entry_kind", name="uq_ledger_compensation_entry"),
    sa.Index("ix_ledger_customer", "customer_id", "issued_at"),
    sa.Index(
        "ix_ledger_case",
        "case_id",
        postgresql_where=sa.text("case_id IS NOT NULL"),
        sqlite_where=sa.text("case_id IS NOT NULL"),
    ),
)

budgets = sa.Table(
    "budgets",
    metadata,
    sa.Column("department", sa.String(40), primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("spent_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reserved_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("incident_id", sa.String(60), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime, nullable=True),
    sa.Column("declared_by", sa.String(100), nullable=False),
    sa.Column("declared_role", sa.String(20), nullable=False),
    # none_as_null: an absent remedy, decision or segment is SQL NULL, not the JSON value null.
    sa.Column("remedy", sa.JSON(none_as_null=True), nullable=True),
    # The decision each tier gets (options and reasons), made once at declaration.
    sa.Column("decisions", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("segment", sa.JSON(none_as_null=True), nullable=True),
    # collecting: the customer list is still growing; running: the list is complete;
    # completed: every customer of the list is issued, skipped or failed.
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("collect_cursor", sa.String(100), nullable=True),
    sa.Column("total", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("issued", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("failed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("skipped", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("correlation_id", sa.String(64), nullable=False),
    sa.Column("declared_event_id", sa.String(64), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("completed_at", UtcDateTime, nullable=True),
    sa.Index("ix_incidents_status", "status"),
)

# `seq` orders the queue by arrival: the fan-out's keyset cursor only moves forward, so customers
# uploaded while it runs (in any id order) are always ahead of it and it never rescans served rows.
incident_targets = sa.Table(
    "incident_targets",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.String(60), nullable=False),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.UniqueConstraint("incident_id", "customer_id", name="uq_incident_targets_customer"),
)

STATUSES = ("pending_approval", "offered", "issued", "rejected", "reversed", "skipped", "failed")
# States whose value counts against the customer's caps and the department's budget.
ACTIVE_STATUSES = ("pending_approval", "offered", "issued")
OPEN_STATUSES = ("pending_approval", "offered")
