"""Writes: booking sessions and leaving feedback. Each invalidates the cache entries it affects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from tutormax_service.cache import dumps
from tutormax_service.mutations import book_session, submit_feedback
from tutormax_service.routes.common import CacheDep, Db, EntityId, utcnow
from tutormax_service.schemas import BookingRequest, FeedbackRequest

router = APIRouter(prefix="/api/sessions", tags=["sessions"])


def _created(body: dict[str, Any], invalidated: int) -> Response:
    return Response(
        content=dumps(body),
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
        headers={"X-Cache-Invalidated": str(invalidated)},
    )


@router.post("", status_code=status.HTTP_201_CREATED)
def create_session(request: BookingRequest, db: Db, cache: CacheDep) -> Response:
    body, stale = book_session(db, request, utcnow())
    return _created(body, cache.invalidate(stale))


@router.post("/{session_id}/feedback", status_code=status.HTTP_201_CREATED)
def create_feedback(session_id: EntityId, request: FeedbackRequest, db: Db, cache: CacheDep) -> Response:
    body, stale = submit_feedback(db, session_id, request, utcnow())
    return _created(body, cache.invalidate(stale))
