"""incident queue in arrival order: a sequence key, (incident, customer) unique

Revision ID: 5c2f0e8a7d41
Revises: 89a7891317dd
Create Date: 2026-11-24 00:30:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '5c2f0e8a7d41'
down_revision: str | None = '89a7891317dd'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A new table, filled from the old one: the same statements work on PostgreSQL and SQLite.
    op.create_table('incident_targets_next',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('incident_id', sa.String(length=60), nullable=False),
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('seq', name='incident_targets_next_pkey'),
    sa.UniqueConstraint('incident_id', 'customer_id', name='uq_incident_targets_customer')
    )
    op.execute("INSERT INTO incident_targets_next (incident_id, customer_id) "
               "SELECT incident_id, customer_id FROM incident_targets ORDER BY incident_id, customer_id")
    op.drop_table('incident_targets')
    op.rename_table('incident_targets_next', 'incident_targets')
    if op.get_bind().dialect.name == 'postgresql':
        # The names a table created as incident_targets would have had.
        op.execute("ALTER TABLE incident_targets RENAME CONSTRAINT incident_targets_next_pkey TO incident_targets_pkey")
        op.execute("ALTER SEQUENCE incident_targets_next_seq_seq RENAME TO incident_targets_seq_seq")


def downgrade() -> None:
    op.create_table('incident_targets_prev',
    sa.Column('incident_id', sa.String(length=60), nullable=False),
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('incident_id', 'customer_id', name='incident_targets_prev_pkey')
    )
    op.execute("INSERT INTO incident_targets_prev (incident_id, customer_id) "
               "SELECT incident_id, customer_id FROM incident_targets")
    op.drop_table('incident_targets')
    op.rename_table('incident_targets_prev', 'incident_targets')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE incident_targets RENAME CONSTRAINT incident_targets_prev_pkey TO incident_targets_pkey")
