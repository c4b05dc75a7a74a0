"""open cases of a queue by deadline

The queue page (``queue = $1 AND state IN ('new', 'open', 'waiting') ORDER BY next_due_at, id``)
could not walk ``ix_cases_queue_state_next_due`` in order (three states), so PostgreSQL read and
sorted the whole queue; the board across every queue sorted every open case. These partial indexes
hold only open cases, in page order, so a page reads its own rows. The predicate is spelled exactly
as the API's default filter so the planner matches it.

Revision ID: 5c20dfc9903d
Revises: c4cee5e0ceb6
Create Date: 2026-12-07 00:25:21.404017
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '5c20dfc9903d'
down_revision: str | None = 'c4cee5e0ceb6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "state IN ('new', 'open', 'waiting')"


INDEXES = {
    'ix_cases_open_queue_due': ['queue', 'next_due_at', 'id'],
    'ix_cases_open_due': ['next_due_at', 'id'],
}


def upgrade() -> None:
    # Built without blocking writes: routing keeps routing complaints while a large table is indexed.
    with op.get_context().autocommit_block():
        for name, columns in INDEXES.items():
            op.create_index(
                name,
                'cases',
                columns,
                unique=False,
                postgresql_where=sa.text(OPEN),
                sqlite_where=sa.text(OPEN),
                postgresql_concurrently=True,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.drop_index(name, table_name='cases', postgresql_concurrently=True)
