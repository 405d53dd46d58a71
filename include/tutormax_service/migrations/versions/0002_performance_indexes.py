"""performance indexes for the hot reads

Built with CREATE INDEX CONCURRENTLY so that applying this to a live, loaded database
does not block writes (which is why it runs in an autocommit block: CONCURRENTLY cannot
run inside a transaction).

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-09
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name -> (table, columns): tutor dashboard, student history, admin date-range
# aggregates, and "recent feedback" listings respectively.
INDEXES: dict[str, tuple[str, list[str]]] = {
    "ix_sessions_tutor_id_scheduled_at": ("sessions", ["tutor_id", "scheduled_at"]),
    "ix_sessions_student_id_scheduled_at": ("sessions", ["student_id", "scheduled_at"]),
    "ix_sessions_scheduled_at": ("sessions", ["scheduled_at"]),
    "ix_feedback_created_at": ("feedback", ["created_at"]),
}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, (table, columns) in INDEXES.items():
            # A failed concurrent build leaves an INVALID index behind that IF NOT EXISTS
            # would silently keep; dropping first makes a re-run rebuild it properly.
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
            op.create_index(name, table, columns, postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, (table, _columns) in INDEXES.items():
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
