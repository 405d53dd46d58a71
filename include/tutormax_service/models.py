"""ORM models. They mirror the schema at Alembic head (a test compares them with the migrations)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    Text,
    UniqueConstraint,
    cast,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column

SUBJECTS: tuple[str, ...] = (
    "algebra",
    "geometry",
    "calculus",
    "statistics",
    "physics",
    "chemistry",
    "biology",
    "english",
    "writing",
    "history",
    "spanish",
    "computer_science",
    "sat_prep",
)
SESSION_STATUSES: tuple[str, ...] = ("scheduled", "completed", "cancelled", "no_show")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tutor(Base):
    __tablename__ = "tutors"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    full_name: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text, unique=True)
    subjects: Mapped[list[str]] = mapped_column(ARRAY(Text))
    bio: Mapped[str | None] = mapped_column(Text)
    hourly_rate_cents: Mapped[int] = mapped_column(Integer, server_default="4500")
    # Running totals maintained on every feedback write, so listings and dashboards
    # never aggregate the feedback table to show a tutor's average.
    rating_sum: Mapped[int] = mapped_column(BigInteger, server_default="0")
    rating_count: Mapped[int] = mapped_column(Integer, server_default="0")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    avg_rating: Mapped[Decimal | None] = column_property(
        func.round(cast(rating_sum, Numeric) / func.nullif(rating_count, 0), 2).label("avg_rating")
    )


class Student(Base):
    __tablename__ = "students"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    full_name: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text, unique=True)
    grade_level: Mapped[int | None] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TutoringSession(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        Index(None, "tutor_id", "scheduled_at"),
        Index(None, "student_id", "scheduled_at"),
        Index(None, "scheduled_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tutor_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tutors.id"))
    student_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("students.id"))
    subject: Mapped[str] = mapped_column(Text)
    scheduled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_minutes: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(Text, server_default="scheduled")
    cancelled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("session_id"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    session_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sessions.id"))
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
