"""Student-facing reads."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from tutormax_service import queries
from tutormax_service.cache import student_history_key
from tutormax_service.routes.common import EntityId, cached_json

router = APIRouter(prefix="/api/students", tags=["students"])


@router.get("/{student_id}/history")
async def student_history(student_id: EntityId, request: Request) -> Response:
    return await cached_json(
        request, student_history_key(student_id), lambda db: queries.student_history(db, student_id)
    )
