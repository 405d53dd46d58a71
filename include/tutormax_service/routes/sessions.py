"""Writes: booking sessions and leaving feedback. Each invalidates the cache entries it affects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from tutormax_service.cache import dumps
from tutormax_service.mutations import book_session, submit_feedback
from tutormax_service.routes.common import EntityId, run_db, utcnow
from tutormax_service.schemas import BookingRequest, FeedbackRequest

router = APIRouter(prefix="/api/sessions", tags=["sessions"])


async def _created(request: Request, body: dict[str, Any], stale: list[str]) -> Response:
    # Invalidation follows the commit, so a read after this response never sees the old entry.
    invalidated = await request.app.state.cache.invalidate(stale)
    return Response(
        content=dumps(body),
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
        headers={"X-Cache-Invalidated": str(invalidated)},
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_session(booking: BookingRequest, request: Request) -> Response:
    body, stale = await run_db(request, lambda db: book_session(db, booking, utcnow()))
    return await _created(request, body, stale)


@router.post("/{session_id}/feedback", status_code=status.HTTP_201_CREATED)
async def create_feedback(session_id: EntityId, feedback: FeedbackRequest, request: Request) -> Response:
    body, stale = await run_db(request, lambda db: submit_feedback(db, session_id, feedback, utcnow()))
    return await _created(request, body, stale)
