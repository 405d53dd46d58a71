"""The cached reads, each as its cache key and the loader that fills it on a miss.

Shared by the FastAPI routes (which declare, validate and document them) and by `fastpath`, which
answers the same requests without FastAPI's routing: one definition, so the two cannot drift.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.datastructures import State

from tutormax_service import cache, queries

Loader = Callable[[Session], Any]
Read = tuple[str, Loader]
_T = TypeVar("_T")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def tutor_dashboard(tutor_id: int) -> Read:
    return cache.tutor_dashboard_key(tutor_id), lambda db: queries.tutor_dashboard(db, tutor_id, utcnow())


def tutor_feedback(tutor_id: int) -> Read:
    return cache.tutor_feedback_key(tutor_id), lambda db: queries.tutor_feedback(db, tutor_id)


def student_history(student_id: int) -> Read:
    return cache.student_history_key(student_id), lambda db: queries.student_history(db, student_id)


def tutors_list(subject: str | None) -> Read:
    return cache.tutors_list_key(subject), lambda db: queries.tutors_list(db, subject)


def admin_overview() -> Read:
    return cache.ADMIN_OVERVIEW_KEY, lambda db: queries.admin_overview(db, utcnow())


def admin_analytics() -> Read:
    return cache.ADMIN_ANALYTICS_KEY, lambda db: queries.admin_analytics(db, utcnow())


@functools.lru_cache(maxsize=256)
def tutors_page(cached: bytes, subject: str | None, limit: int) -> bytes:
    """The response body for one cached list and limit. Memoised on the cached bytes themselves, so
    a hit on an unchanged entry skips the decode and encode, and a changed entry is a new key."""
    tutors = json.loads(cached)["tutors"][:limit]
    return cache.dumps({"subject": subject, "count": len(tutors), "tutors": tutors})


async def run_db(state: State, work: Callable[[Session], _T]) -> _T:
    """Run ``work(session)`` in a worker thread, at most as many at once as the pool has connections."""

    def call() -> _T:
        with state.session_factory() as db:
            return work(db)

    return await anyio.to_thread.run_sync(call, limiter=state.db_limiter)


async def read(state: State, what: Read) -> tuple[bytes, bool]:
    """``(json_body, was_hit)``, read-through; a miss loads and encodes in a worker thread."""
    key, loader = what

    async def load() -> bytes:
        return await run_db(state, lambda db: cache.dumps(loader(db)))

    return await state.cache.read_through(key, load)
