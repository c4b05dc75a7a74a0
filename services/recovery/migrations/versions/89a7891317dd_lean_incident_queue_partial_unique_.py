"""lean incident queue, partial unique indexes, incident decisions by tier

Revision ID: 89a7891317dd
Revises: 11721d53733c
Create Date: 2026-11-23 15:31:49.461322
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db


revision: str = '89a7891317dd'
down_revision: str | None = '11721d53733c'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('incident_targets',
    sa.Column('incident_id', sa.String(length=60), nullable=False),
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('incident_id', 'customer_id')
    )
    # Customers queued the old way move to the lean queue.
    op.execute("INSERT INTO incident_targets (incident_id, customer_id) "
               "SELECT incident_id, customer_id FROM compensations WHERE status = 'queued'")
    op.execute("DELETE FROM compensations WHERE status = 'queued'")
    # An absent segment or remedy was stored as the JSON value null; it is SQL NULL from now on.
    for column in ("segment", "remedy"):
        op.execute(f"UPDATE incidents SET {column} = NULL WHERE CAST({column} AS TEXT) = 'null'")
    with op.batch_alter_table('compensation_ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_incident')
        batch_op.drop_index('ix_ledger_case')
        batch_op.create_index('ix_ledger_case', ['case_id'], unique=False,
                              postgresql_where=sa.text('case_id IS NOT NULL'), sqlite_where=sa.text('case_id IS NOT NULL'))
    _keep_ledger_append_only()
    with op.batch_alter_table('compensations', schema=None) as batch_op:
        batch_op.drop_index('ix_compensations_queued')
        batch_op.drop_constraint('uq_compensations_case_reason', type_='unique')
        batch_op.drop_constraint('uq_compensations_incident_customer', type_='unique')
        batch_op.create_index('uq_compensations_case_reason', ['case_id', 'reason'], unique=True,
                              postgresql_where=sa.text('case_id IS NOT NULL'), sqlite_where=sa.text('case_id IS NOT NULL'))
        batch_op.create_index('uq_compensations_incident_customer', ['incident_id', 'customer_id'], unique=True,
                              postgresql_where=sa.text('incident_id IS NOT NULL'),
                              sqlite_where=sa.text('incident_id IS NOT NULL'))
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('decisions', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_column('decisions')
    with op.batch_alter_table('compensations', schema=None) as batch_op:
        batch_op.drop_index('uq_compensations_incident_customer')
        batch_op.drop_index('uq_compensations_case_reason')
        batch_op.create_unique_constraint('uq_compensations_incident_customer', ['incident_id', 'customer_id'])
        batch_op.create_unique_constraint('uq_compensations_case_reason', ['case_id', 'reason'])
        batch_op.create_index('ix_compensations_queued', ['incident_id', 'customer_id'], unique=False,
                              postgresql_where=sa.text("status = 'queued'"), sqlite_where=sa.text("status = 'queued'"))
    with op.batch_alter_table('compensation_ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_case')
        batch_op.create_index('ix_ledger_case', ['case_id'], unique=False)
        batch_op.create_index('ix_ledger_incident', ['incident_id'], unique=False)
    _keep_ledger_append_only()
    op.execute(
        "INSERT INTO compensations (compensation_id, customer_id, incident_id, reason, status, options, currency, "
        "reasons, created_at, updated_at) SELECT incident_id || ':' || customer_id, customer_id, incident_id, "
        "'incident', 'queued', '[]', 'CNY', '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM incident_targets"
    )
    op.drop_table('incident_targets')


def _keep_ledger_append_only() -> None:
    """SQLite may rebuild a table in batch mode, losing its triggers: make sure they are there."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER IF NOT EXISTS ledger_append_only_{action.lower()} BEFORE {action} ON compensation_ledger "
            f"BEGIN SELECT RAISE(ABORT, 'compensation_ledger is append-only: {action} refused'); END"
        )
