"""Random real ids for load generators (GET /api/ids/sample), without sorting tables per call.

ORDER BY random() reads and sorts a whole table on every call. Instead each worker keeps a
snapshot of the active tutors (id and subjects) and of the student ids, reloaded when older than
``refresh_seconds``, and samples from it in memory. Tutors and students are only ever added, so a
snapshot can only miss the newest ones until its next reload. Sessions change state all the time,
so they are read live: a run of eligible ids from a random start within the completed ones' id
range (taken with the snapshot), an index walk on the primary key.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tutormax_service.models import Feedback, Student, Tutor, TutoringSession

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Snapshot:
    taken_at: float
    tutors: list[tuple[int, list[str]]]
    student_ids: array
    session_span: tuple[int, int] | None


class IdSampler:
    def __init__(self, refresh_seconds: float) -> None:
        self.refresh_seconds = refresh_seconds
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()

    def preload(self, session_factory: Callable[[], Session]) -> None:
        """Take the first snapshot at startup, so no request waits for it; a database that is down
        now only defers it to the first call."""
        try:
            with session_factory() as db:
                self._current(db)
        except SQLAlchemyError:
            logger.warning("could not preload the id snapshot; /api/ids/sample will load it", exc_info=True)

    def _current(self, db: Session) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - snapshot.taken_at < self.refresh_seconds:
            return snapshot
        with self._lock:  # one reload at a time; the others then find it fresh
            snapshot = self._snapshot
            if snapshot is None or time.monotonic() - snapshot.taken_at >= self.refresh_seconds:
                snapshot = self._snapshot = _load(db)
        return snapshot

    def sample(self, db: Session, limit: int) -> dict[str, Any]:
        """Up to ``limit`` random active tutors and students; session_ids are a run of completed
        sessions still lacking feedback."""
        snapshot = self._current(db)
        tutors = random.sample(snapshot.tutors, min(limit, len(snapshot.tutors)))
        return {
            "tutor_ids": [tutor_id for tutor_id, _ in tutors],
            "student_ids": random.sample(snapshot.student_ids, min(limit, len(snapshot.student_ids))),
            "session_ids": _feedbackless_sessions(db, snapshot.session_span, limit),
            "tutor_subjects": {str(tutor_id): subjects for tutor_id, subjects in tutors},
        }


def _load(db: Session) -> _Snapshot:
    tutors = [
        (row.id, row.subjects) for row in db.execute(select(Tutor.id, Tutor.subjects).where(Tutor.is_active))
    ]
    student_ids = array("q", db.scalars(select(Student.id)))
    # Where completed sessions lie (ids grow with booking time, and future ones are never
    # completed), so a run starts where it can find some.
    s = TutoringSession
    low, high = db.execute(select(func.min(s.id), func.max(s.id)).where(s.status == "completed")).one()
    span = None if low is None else (low, high)
    return _Snapshot(time.monotonic(), tutors, student_ids, span)


def _feedbackless_sessions(db: Session, span: tuple[int, int] | None, limit: int) -> list[int]:
    if span is None:
        return []
    s = TutoringSession
    eligible = (s.status == "completed", ~select(Feedback.id).where(Feedback.session_id == s.id).exists())
    start = random.randint(*span)
    ids: list[int] = []
    # From the random start to the end, then from the beginning if that was not enough.
    for run in (s.id >= start, s.id < start):
        ids += db.scalars(select(s.id).where(run, *eligible).order_by(s.id).limit(limit - len(ids)))
        if len(ids) >= limit:
            break
    return ids
