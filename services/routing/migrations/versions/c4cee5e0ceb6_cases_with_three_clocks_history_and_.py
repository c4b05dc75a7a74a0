"""cases with three clocks, history and hand-offs

Revision ID: c4cee5e0ceb6
Revises: 8bcb45cf793b
Create Date: 2026-11-23 15:04:52.032608
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = 'c4cee5e0ceb6'
down_revision: str | None = '8bcb45cf793b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_TS = shared.db.UtcDateTime(timezone=True)

_NEW_CASE_COLUMNS = [
    sa.Column('initial_severity', sa.String(length=4), nullable=True),
    sa.Column('level', sa.String(length=20), server_default='agent', nullable=False),
    sa.Column('owner', sa.String(length=100), nullable=True),
    sa.Column('assignee', sa.String(length=100), nullable=True),
    sa.Column('channel', sa.String(length=20), nullable=True),
    sa.Column('subject', sa.String(length=300), nullable=True),
    sa.Column('excerpt', sa.Text(), nullable=True),
    sa.Column('acknowledged_at', _TS, nullable=True),
    sa.Column('next_update_due', _TS, nullable=True),
    sa.Column('next_warn_at', _TS, nullable=True),
    sa.Column('next_due_at', _TS, nullable=True),
    sa.Column('first_handling', sa.Boolean(), nullable=True),
    sa.Column('sla_breached', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('complex', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('routed_seconds', sa.Float(), nullable=True),
    sa.Column('first_response_seconds', sa.Float(), nullable=True),
    sa.Column('handoff_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('reopen_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('escalations', sa.Integer(), server_default='0', nullable=False),
    sa.Column('follow_ups', sa.Integer(), server_default='0', nullable=False),
    sa.Column('pause_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('paused_seconds', sa.Float(), server_default='0', nullable=False),
    sa.Column('policy_version', sa.String(length=40), nullable=True),
    sa.Column('snapshot', sa.JSON(), nullable=True),
    sa.Column('updated_at', _TS, nullable=True),
]


def upgrade() -> None:
    op.create_table('case_history',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('at', _TS, nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('by', sa.String(length=100), nullable=True),
    sa.Column('role', sa.String(length=20), nullable=True),
    sa.Column('event_id', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_case_history_case_id'), 'case_history', ['case_id'], unique=False)
    op.create_table('handoffs',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('from_queue', sa.String(length=40), nullable=False),
    sa.Column('to_queue', sa.String(length=40), nullable=False),
    sa.Column('requested_queue', sa.String(length=40), nullable=False),
    sa.Column('from_owner', sa.String(length=100), nullable=True),
    sa.Column('to_owner', sa.String(length=100), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('requested_by', sa.String(length=100), nullable=False),
    sa.Column('requested_at', _TS, nullable=False),
    sa.Column('taken_by', sa.String(length=100), nullable=True),
    sa.Column('taken_at', _TS, nullable=True),
    sa.Column('handoff_seconds', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_handoffs_case_id'), 'handoffs', ['case_id'], unique=False)
    op.create_index('ix_handoffs_taken_at', 'handoffs', ['taken_at'], unique=False)
    with op.batch_alter_table('cases', schema=None) as batch_op:
        for column in _NEW_CASE_COLUMNS:
            batch_op.add_column(column.copy())
        batch_op.alter_column('first_response_due', existing_type=_TS, nullable=True)
        batch_op.alter_column('resolution_due', existing_type=_TS, nullable=True)
        batch_op.drop_index('ix_cases_queue_state_due')
        batch_op.drop_index('ix_cases_customer')
        batch_op.create_index('ix_cases_customer', ['customer_id', 'received_at'], unique=False)
        batch_op.create_index('ix_cases_queue_state_next_due', ['queue', 'state', 'next_due_at'], unique=False)
        batch_op.create_index('ix_cases_routed_at', ['routed_at'], unique=False)
    op.execute("UPDATE cases SET initial_severity = severity WHERE initial_severity IS NULL")


def downgrade() -> None:
    # Cases opened since have no deadline while paused; give them one so the old NOT NULL holds.
    op.execute("UPDATE cases SET first_response_due = routed_at WHERE first_response_due IS NULL")
    op.execute("UPDATE cases SET resolution_due = routed_at WHERE resolution_due IS NULL")
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_routed_at')
        batch_op.drop_index('ix_cases_queue_state_next_due')
        batch_op.drop_index('ix_cases_customer')
        batch_op.create_index('ix_cases_customer', ['customer_id'], unique=False)
        batch_op.create_index('ix_cases_queue_state_due', ['queue', 'state', 'resolution_due'], unique=False)
        batch_op.alter_column('resolution_due', existing_type=_TS, nullable=False)
        batch_op.alter_column('first_response_due', existing_type=_TS, nullable=False)
        for column in reversed(_NEW_CASE_COLUMNS):
            batch_op.drop_column(column.name)
    op.drop_index('ix_handoffs_taken_at', table_name='handoffs')
    op.drop_index(op.f('ix_handoffs_case_id'), table_name='handoffs')
    op.drop_table('handoffs')
    op.drop_index(op.f('ix_case_history_case_id'), table_name='case_history')
    op.drop_table('case_history')
