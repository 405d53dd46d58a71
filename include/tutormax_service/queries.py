"""Read models behind the cached GET endpoints. Each returns a JSON-ready dict."""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from sqlalchemy import Date, cast, func, select
from sqlalchemy.orm import Session

from tutormax_service.errors import NotFoundError
from tutormax_service.models import Feedback, Student, Tutor, TutoringSession

# Lists are cached at their maximum size and sliced per request, so one key serves every limit.
MAX_TUTORS_LIST = 100
_RECENT_FEEDBACK = 10
_UPCOMING_SESSIONS = 10
_FEEDBACK_PAGE = 50
_HISTORY_PAGE = 50
ANALYTICS_DAYS = 30
# GET /api/admin/overview counts the sessions of the next 24 hours.
OVERVIEW_UPCOMING = dt.timedelta(hours=24)

_Entity = TypeVar("_Entity", Tutor, Student, TutoringSession)


def analytics_window(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """UTC days [today - 29, tomorrow): the span GET /api/admin/analytics aggregates."""
    tomorrow = dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(), dt.UTC) + dt.timedelta(days=1)
    return tomorrow - dt.timedelta(days=ANALYTICS_DAYS), tomorrow


def _average(total: int, count: int) -> float | None:
    return round(total / count, 2) if count else None


def _rows(db: Session, stmt: Any) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in db.execute(stmt)]


def require(db: Session, model: type[_Entity], entity_id: int) -> _Entity:
    """Load by primary key or raise NotFoundError (-> 404)."""
    entity = db.get(model, entity_id)
    if entity is None:
        raise NotFoundError(f"{model.__name__} {entity_id} not found")
    return entity


def _status_counts(db: Session, *conditions: Any) -> dict[str, int]:
    stmt = select(TutoringSession.status, func.count()).where(*conditions).group_by(TutoringSession.status)
    return {status: count for status, count in db.execute(stmt)}


def tutors_list(db: Session, subject: str | None) -> dict[str, Any]:
    stmt = (
        select(
            Tutor.id,
            Tutor.full_name,
            Tutor.subjects,
            Tutor.hourly_rate_cents,
            Tutor.avg_rating,
            Tutor.rating_count,
        )
        .where(Tutor.is_active)
        .order_by(Tutor.avg_rating.desc().nulls_last(), Tutor.rating_count.desc(), Tutor.id)
        .limit(MAX_TUTORS_LIST)
    )
    if subject is not None:
        stmt = stmt.where(Tutor.subjects.any_() == subject)
    return {"subject": subject, "tutors": _rows(db, stmt)}


def tutor_dashboard(db: Session, tutor_id: int, now: dt.datetime) -> dict[str, Any]:
    tutor = require(db, Tutor, tutor_id)
    s = TutoringSession
    upcoming = (
        select(
            s.id,
            s.student_id,
            Student.full_name.label("student_name"),
            s.subject,
            s.scheduled_at,
            s.duration_minutes,
        )
        .join(Student, Student.id == s.student_id)
        .where(s.tutor_id == tutor_id, s.status == "scheduled", s.scheduled_at >= now)
        .order_by(s.scheduled_at)
        .limit(_UPCOMING_SESSIONS)
    )
    recent_feedback = (
        select(
            Feedback.id,
            Feedback.session_id,
            s.subject,
            Feedback.rating,
            Feedback.comment,
            Feedback.created_at,
        )
        .join(s, s.id == Feedback.session_id)
        .where(s.tutor_id == tutor_id)
        .order_by(Feedback.created_at.desc())
        .limit(_RECENT_FEEDBACK)
    )
    last_30_days = _status_counts(
        db, s.tutor_id == tutor_id, s.scheduled_at >= now - dt.timedelta(days=30), s.scheduled_at < now
    )
    return {
        "tutor": {
            "id": tutor.id,
            "full_name": tutor.full_name,
            "subjects": tutor.subjects,
            "hourly_rate_cents": tutor.hourly_rate_cents,
            "is_active": tutor.is_active,
        },
        "avg_rating": tutor.avg_rating,
        "rating_count": tutor.rating_count,
        "last_30_days": last_30_days,
        "upcoming_sessions": _rows(db, upcoming),
        "recent_feedback": _rows(db, recent_feedback),
    }


def tutor_feedback(db: Session, tutor_id: int) -> dict[str, Any]:
    tutor = require(db, Tutor, tutor_id)
    s = TutoringSession
    distribution = dict.fromkeys(map(str, range(1, 6)), 0)
    by_rating = (
        select(Feedback.rating, func.count())
        .join(s, s.id == Feedback.session_id)
        .where(s.tutor_id == tutor_id)
        .group_by(Feedback.rating)
    )
    distribution.update({str(rating): count for rating, count in db.execute(by_rating)})
    items = (
        select(
            Feedback.id,
            Feedback.session_id,
            s.student_id,
            s.subject,
            Feedback.rating,
            Feedback.comment,
            Feedback.created_at,
        )
        .join(s, s.id == Feedback.session_id)
        .where(s.tutor_id == tutor_id)
        .order_by(Feedback.created_at.desc())
        .limit(_FEEDBACK_PAGE)
    )
    return {
        "tutor_id": tutor_id,
        "avg_rating": tutor.avg_rating,
        "rating_count": tutor.rating_count,
        "distribution": distribution,
        "items": _rows(db, items),
    }


def student_history(db: Session, student_id: int) -> dict[str, Any]:
    student = require(db, Student, student_id)
    s = TutoringSession
    sessions = (
        select(
            s.id,
            s.tutor_id,
            Tutor.full_name.label("tutor_name"),
            s.subject,
            s.scheduled_at,
            s.duration_minutes,
            s.status,
            s.cancelled_reason,
            Feedback.rating,
        )
        .join(Tutor, Tutor.id == s.tutor_id)
        .outerjoin(Feedback, Feedback.session_id == s.id)
        .where(s.student_id == student_id)
        .order_by(s.scheduled_at.desc())
        .limit(_HISTORY_PAGE)
    )
    return {
        "student": {"id": student.id, "full_name": student.full_name, "grade_level": student.grade_level},
        "totals": _status_counts(db, s.student_id == student_id),
        "sessions": _rows(db, sessions),
    }


def admin_overview(db: Session, now: dt.datetime) -> dict[str, Any]:
    s = TutoringSession
    tutors_total, tutors_active = db.execute(
        select(func.count(), func.count().filter(Tutor.is_active)).select_from(Tutor)
    ).one()
    feedback_count, feedback_avg = db.execute(
        select(func.count(), func.round(func.avg(Feedback.rating), 2)).where(
            Feedback.created_at >= now - dt.timedelta(days=30)
        )
    ).one()
    return {
        "generated_at": now,
        "tutors": {"total": tutors_total, "active": tutors_active},
        "students": {"total": db.scalar(select(func.count()).select_from(Student))},
        "sessions_last_7_days": _status_counts(
            db, s.scheduled_at >= now - dt.timedelta(days=7), s.scheduled_at < now
        ),
        "sessions_next_24_hours": _status_counts(
            db, s.scheduled_at >= now, s.scheduled_at < now + OVERVIEW_UPCOMING
        ),
        "feedback_last_30_days": {"count": feedback_count, "avg_rating": feedback_avg},
    }


def admin_analytics(db: Session, now: dt.datetime) -> dict[str, Any]:
    start, end = analytics_window(now)
    s = TutoringSession
    day = cast(func.date_trunc("day", s.scheduled_at), Date).label("day")
    # One pass over the window grouped by (day, subject, status); both breakdowns are
    # folded from it in Python instead of scanning the window twice.
    stmt = (
        select(
            day,
            s.subject,
            s.status,
            func.count().label("sessions"),
            func.coalesce(func.sum(Feedback.rating), 0).label("rating_sum"),
            func.count(Feedback.id).label("rating_count"),
        )
        .outerjoin(Feedback, Feedback.session_id == s.id)
        .where(s.scheduled_at >= start, s.scheduled_at < end)
        .group_by(day, s.subject, s.status)
    )
    per_day: dict[dt.date, dict[str, Any]] = {}
    per_subject: dict[str, dict[str, Any]] = {}
    for row in db.execute(stmt):
        day_bucket = per_day.setdefault(row.day, {"date": row.day, "sessions": 0, "by_status": {}})
        subject_bucket = per_subject.setdefault(
            row.subject,
            {"subject": row.subject, "sessions": 0, "by_status": {}, "rating_sum": 0, "ratings": 0},
        )
        for bucket in (day_bucket, subject_bucket):
            bucket["sessions"] += row.sessions
            bucket["by_status"][row.status] = bucket["by_status"].get(row.status, 0) + row.sessions
        subject_bucket["rating_sum"] += row.rating_sum
        subject_bucket["ratings"] += row.rating_count
    rating_sum = sum(bucket["rating_sum"] for bucket in per_subject.values())
    ratings = sum(bucket["ratings"] for bucket in per_subject.values())
    for bucket in per_subject.values():
        bucket["avg_rating"] = _average(bucket.pop("rating_sum"), bucket["ratings"])
    return {
        "window": {"start": start, "end": end, "days": ANALYTICS_DAYS},
        "sessions_per_day": [per_day[key] for key in sorted(per_day)],
        "per_subject": sorted(per_subject.values(), key=lambda item: item["sessions"], reverse=True),
        "avg_rating": _average(rating_sum, ratings),
        "ratings": ratings,
    }
