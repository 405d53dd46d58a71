"""initial schema: tutors, students, sessions, feedback

Revision ID: 0001
Revises:
Create Date: 2025-11-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMESTAMPTZ = sa.DateTime(timezone=True)


def _id_column() -> sa.Column:
    return sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True)


def _created_at_column() -> sa.Column:
    return sa.Column("created_at", _TIMESTAMPTZ, nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "tutors",
        _id_column(),
        sa.Column("full_name", sa.Text, nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("subjects", sa.dialects.postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("bio", sa.Text),
        sa.Column("rating_sum", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rating_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        _created_at_column(),
        sa.PrimaryKeyConstraint("id", name="pk_tutors"),
        sa.UniqueConstraint("email", name="uq_tutors_email"),
        sa.CheckConstraint("cardinality(subjects) > 0", name="ck_tutors_has_subjects"),
    )
    op.create_table(
        "students",
        _id_column(),
        sa.Column("full_name", sa.Text, nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("grade_level", sa.SmallInteger),
        _created_at_column(),
        sa.PrimaryKeyConstraint("id", name="pk_students"),
        sa.UniqueConstraint("email", name="uq_students_email"),
        sa.CheckConstraint("grade_level BETWEEN 1 AND 16", name="ck_students_grade_level"),
    )
    op.create_table(
        "sessions",
        _id_column(),
        sa.Column("tutor_id", sa.BigInteger, nullable=False),
        sa.Column("student_id", sa.BigInteger, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("scheduled_at", _TIMESTAMPTZ, nullable=False),
        sa.Column("duration_minutes", sa.SmallInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="scheduled"),
        _created_at_column(),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.ForeignKeyConstraint(["tutor_id"], ["tutors.id"], name="fk_sessions_tutor_id_tutors"),
        sa.ForeignKeyConstraint(["student_id"], ["students.id"], name="fk_sessions_student_id_students"),
        sa.CheckConstraint("duration_minutes BETWEEN 15 AND 240", name="ck_sessions_duration"),
        sa.CheckConstraint(
            "status IN ('scheduled', 'completed', 'cancelled', 'no_show')", name="ck_sessions_status"
        ),
    )
    op.create_table(
        "feedback",
        _id_column(),
        sa.Column("session_id", sa.BigInteger, nullable=False),
        sa.Column("rating", sa.SmallInteger, nullable=False),
        sa.Column("comment", sa.Text),
        _created_at_column(),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], name="fk_feedback_session_id_sessions"),
        # One review per session; the constraint's index also serves feedback -> session lookups.
        sa.UniqueConstraint("session_id", name="uq_feedback_session_id"),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="ck_feedback_rating"),
    )


def downgrade() -> None:
    for table in ("feedback", "sessions", "students", "tutors"):
        op.drop_table(table)
