"""Write paths. Each commits and returns the response body plus the cache keys it made stale."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tutormax_service import cache
from tutormax_service.errors import ConflictError, DomainValidationError
from tutormax_service.models import Feedback, Student, Tutor, TutoringSession
from tutormax_service.queries import OVERVIEW_UPCOMING, analytics_window, require
from tutormax_service.schemas import BookingRequest, FeedbackRequest


def _session_body(session: TutoringSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "tutor_id": session.tutor_id,
        "student_id": session.student_id,
        "subject": session.subject,
        "scheduled_at": session.scheduled_at,
        "duration_minutes": session.duration_minutes,
        "status": session.status,
    }


def _analytics_keys(scheduled_at: dt.datetime, now: dt.datetime) -> list[str]:
    start, end = analytics_window(now)
    return [cache.ADMIN_ANALYTICS_KEY] if start <= scheduled_at < end else []


def _overview_keys(scheduled_at: dt.datetime, now: dt.datetime) -> list[str]:
    # A cached overview counts [its generated_at, +24 h), which ends before now + 24 h: a booking
    # later than that is in no cached overview's window.
    return [cache.ADMIN_OVERVIEW_KEY] if scheduled_at < now + OVERVIEW_UPCOMING else []


def book_session(db: Session, request: BookingRequest, now: dt.datetime) -> tuple[dict[str, Any], list[str]]:
    tutor = require(db, Tutor, request.tutor_id)
    require(db, Student, request.student_id)
    if not tutor.is_active:
        raise ConflictError(f"tutor {tutor.id} is not accepting bookings")
    if request.subject not in tutor.subjects:
        raise DomainValidationError(f"tutor {tutor.id} does not teach {request.subject!r}")
    session = TutoringSession(
        tutor_id=tutor.id,
        student_id=request.student_id,
        subject=request.subject,
        scheduled_at=request.scheduled_at,
        duration_minutes=request.duration_minutes,
        status="scheduled",
    )
    db.add(session)
    db.commit()
    # Tutors lists show ratings only, so a booking leaves them untouched.
    stale = [
        cache.tutor_dashboard_key(tutor.id),
        cache.student_history_key(request.student_id),
        *_overview_keys(request.scheduled_at, now),
        *_analytics_keys(request.scheduled_at, now),
    ]
    return _session_body(session), stale


def submit_feedback(
    db: Session, session_id: int, request: FeedbackRequest, now: dt.datetime
) -> tuple[dict[str, Any], list[str]]:
    session = require(db, TutoringSession, session_id)
    if session.status != "completed":
        raise ConflictError(
            f"session {session_id} is {session.status}; only completed sessions take feedback"
        )
    tutor = db.get(Tutor, session.tutor_id)
    feedback = Feedback(session_id=session_id, rating=request.rating, comment=request.comment)
    db.add(feedback)
    try:
        db.flush()
    except IntegrityError as exc:
        db.rollback()
        raise ConflictError(f"session {session_id} already has feedback") from exc
    # Same transaction as the insert, as an in-place increment: concurrent reviews of one
    # tutor cannot lose updates, and the running average never disagrees with the rows.
    db.execute(
        update(Tutor)
        .where(Tutor.id == tutor.id)
        .values(rating_sum=Tutor.rating_sum + request.rating, rating_count=Tutor.rating_count + 1)
    )
    db.commit()
    stale = [
        cache.tutor_dashboard_key(session.tutor_id),
        cache.tutor_feedback_key(session.tutor_id),
        cache.student_history_key(session.student_id),
        cache.ADMIN_OVERVIEW_KEY,
        *_analytics_keys(session.scheduled_at, now),
        # The tutor's rating moved, so every listing that shows it is stale.
        cache.tutors_list_key(None),
        *(cache.tutors_list_key(subject) for subject in tutor.subjects),
    ]
    body = {
        "id": feedback.id,
        "session_id": session_id,
        "tutor_id": session.tutor_id,
        "rating": feedback.rating,
        "comment": feedback.comment,
        "created_at": feedback.created_at,
    }
    return body, stale
