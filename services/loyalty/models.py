"""Loyalty's tables (SQLAlchemy Core).

The points ledger is append-only; `customers.balance` and `points_lots.remaining` are running
totals kept in the same transaction as each entry, under the customer's row lock, with CHECK
constraints as the last guard against a negative balance.
"""

import sqlalchemy as sa

from shared.db import UtcDateTime, add_delivery_tables

metadata = sa.MetaData()
delivery = add_delivery_tables(metadata)

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")
LEDGER_KINDS = ("earn", "redeem", "expire", "reverse", "adjust")

# One row per known customer: the lock every points change takes, the balance and the tier.
customers = sa.Table(
    "customers",
    metadata,
    sa.Column("customer_id", sa.String(100), primary_key=True),
    sa.Column("balance", sa.Integer, nullable=False, server_default="0"),
    sa.Column("tier", sa.String(20), nullable=False, server_default="potential"),
    sa.Column("tier_reasons", sa.JSON, nullable=False),
    sa.Column("tier_changed_at", UtcDateTime, nullable=True),
    sa.Column("tier_year", sa.Integer, nullable=True),
    sa.Column("birth_month", sa.Integer, nullable=True),
    sa.Column("benefits_checked_on", sa.Date, nullable=True),
    sa.Column("last_churn_alert_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("balance >= 0", name="ck_customers_balance_non_negative"),
    sa.CheckConstraint("birth_month IS NULL OR birth_month BETWEEN 1 AND 12", name="ck_customers_birth_month"),
    sa.Index("ix_customers_tier_year", "tier_year"),
    sa.Index("ix_customers_benefits_checked_on", "benefits_checked_on"),
)

# Append-only: entries are never updated or deleted. `source_key` makes each effect happen once
# (one earn per order, one grant per compensation, one award per year...).
ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("entry_id", sa.String(40), nullable=False, unique=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("balance_after", sa.Integer, nullable=False),
    sa.Column("reason", sa.String(300), nullable=False),
    sa.Column("source_key", sa.String(300), nullable=True, unique=True),
    sa.Column("compensation_id", sa.String(100), nullable=True),
    sa.Column("case_id", sa.String(100), nullable=True),
    sa.Column("order_id", sa.String(100), nullable=True),
    sa.Column("value_minor", sa.BigInteger, nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("takes", sa.JSON, nullable=True),
    sa.Column("actor", sa.String(100), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("balance_after >= 0", name="ck_ledger_balance_after_non_negative"),
    sa.CheckConstraint(f"kind IN ({', '.join(repr(k) for k in LEDGER_KINDS)})", name="ck_ledger_kind"),
    sa.Index("ix_ledger_customer_seq", "customer_id", "seq"),
)

# Points earned together, and what is left of them; consumed oldest first.
points_lots = sa.Table(
    "points_lots",
    metadata,
    sa.Column("lot_id", sa.String(40), primary_key=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("remaining", sa.Integer, nullable=False),
    sa.Column("earned_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("source_key", sa.String(300), nullable=True),
    sa.CheckConstraint("remaining >= 0 AND remaining <= points", name="ck_points_lots_remaining"),
    sa.Index("ix_points_lots_customer", "customer_id", "earned_at"),
    sa.Index(
        "ix_points_lots_expiry",
        "expires_at",
        postgresql_where=sa.text("remaining > 0"),
        sqlite_where=sa.text("remaining > 0"),
    ),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("order_id", sa.String(100), primary_key=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("completed_at", UtcDateTime, nullable=False),
    sa.Column("year", sa.Integer, nullable=False),
    sa.Column("points_earned", sa.Integer, nullable=False),
    sa.Column("lot_id", sa.String(40), nullable=True),
    sa.CheckConstraint("refunded_minor >= 0 AND refunded_minor <= amount_minor", name="ck_orders_refund"),
    sa.Index("ix_orders_customer_year", "customer_id", "year"),
)

# One row per distinct refund (order, time, amount), so a re-sent refund is applied once.
refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("order_id", sa.String(100), primary_key=True),
    sa.Column("refunded_at", UtcDateTime, primary_key=True),
    sa.Column("amount_minor", sa.BigInteger, primary_key=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("points_reversed", sa.Integer, nullable=False),
)

benefit_grants = sa.Table(
    "benefit_grants",
    metadata,
    sa.Column("customer_id", sa.String(100), primary_key=True),
    sa.Column("benefit", sa.String(60), primary_key=True),
    sa.Column("period", sa.String(100), primary_key=True),
    sa.Column("tier", sa.String(20), nullable=True),
    sa.Column("coupon_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("points", sa.Integer, nullable=False, server_default="0"),
    sa.Column("issued_at", UtcDateTime, nullable=False),
)

referrals = sa.Table(
    "referrals",
    metadata,
    sa.Column("new_customer_id", sa.String(100), primary_key=True),
    sa.Column("referrer_id", sa.String(100), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("rewarded_at", UtcDateTime, nullable=True),
    sa.CheckConstraint("new_customer_id <> referrer_id", name="ck_referrals_not_self"),
)

surveys = sa.Table(
    "surveys",
    metadata,
    sa.Column("survey_id", sa.String(40), primary_key=True),
    sa.Column("token_digest", sa.String(64), nullable=False, unique=True),
    sa.Column("source_key", sa.String(300), nullable=False, unique=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("case_id", sa.String(100), nullable=False),
    sa.Column("correlation_id", sa.String(100), nullable=True),
    sa.Column("follow_up_of", sa.String(40), nullable=True),
    sa.Column("compensation_id", sa.String(100), nullable=True),
    sa.Column("customer_tier", sa.String(20), nullable=True),
    sa.Column("queue", sa.String(100), nullable=True),
    sa.Column("category", sa.String(50), nullable=True),
    sa.Column("issued_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("answered_at", UtcDateTime, nullable=True),
    sa.Column("csat", sa.Integer, nullable=True),
    sa.Column("nps", sa.Integer, nullable=True),
    sa.Column("ces", sa.Integer, nullable=True),
    sa.Column("dimensions", sa.JSON, nullable=True),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("low_score", sa.Boolean, nullable=True),
    sa.Column("satisfaction", sa.Float, nullable=True),
    sa.Index("ix_surveys_answered_at", "answered_at"),
    sa.Index("ix_surveys_customer", "customer_id", "answered_at"),
    sa.Index("ix_surveys_case", "case_id"),
    sa.Index("ix_surveys_follow_up_of", "follow_up_of"),
)

care_followups = sa.Table(
    "care_followups",
    metadata,
    sa.Column("timer_key", sa.String(200), primary_key=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("case_id", sa.String(100), nullable=False),
    sa.Column("day", sa.Integer, nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("status_at", UtcDateTime, nullable=False),
    sa.Index("ix_care_followups_customer", "customer_id", "status"),
    sa.Index("ix_care_followups_case", "case_id", "status"),
)

complaints_seen = sa.Table(
    "complaints_seen",
    metadata,
    sa.Column("complaint_id", sa.String(100), primary_key=True),
    sa.Column("customer_id", sa.String(100), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Index("ix_complaints_seen_customer", "customer_id", "received_at"),
)
