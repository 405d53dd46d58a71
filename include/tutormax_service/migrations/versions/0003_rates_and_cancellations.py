"""tutor hourly rates and session cancellation reasons

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default is a catalog-only change on PG 11+: no table rewrite for existing tutors.
    op.add_column(
        "tutors",
        sa.Column("hourly_rate_cents", sa.Integer, nullable=False, server_default="4500"),
    )
    op.create_check_constraint("ck_tutors_hourly_rate_positive", "tutors", "hourly_rate_cents > 0")
    op.add_column("sessions", sa.Column("cancelled_reason", sa.Text))
    # NOT VALID + VALIDATE: the ADD takes the strong lock only momentarily, and the
    # full-table check runs under a lock that still lets the service write sessions.
    op.execute(
        "ALTER TABLE sessions ADD CONSTRAINT ck_sessions_cancelled_reason "
        "CHECK (cancelled_reason IS NULL OR status = 'cancelled') NOT VALID"
    )
    op.execute("ALTER TABLE sessions VALIDATE CONSTRAINT ck_sessions_cancelled_reason")


def downgrade() -> None:
    op.drop_constraint("ck_sessions_cancelled_reason", "sessions", type_="check")
    op.drop_column("sessions", "cancelled_reason")
    op.drop_constraint("ck_tutors_hourly_rate_positive", "tutors", type_="check")
    op.drop_column("tutors", "hourly_rate_cents")
