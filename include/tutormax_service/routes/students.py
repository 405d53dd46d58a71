"""Student-facing reads."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from tutormax_service import reads
from tutormax_service.routes.common import EntityId, cached_json

router = APIRouter(prefix="/api/students", tags=["students"])


@router.get("/{student_id}/history")
async def student_history(student_id: EntityId, request: Request) -> Response:
    return await cached_json(request, reads.student_history(student_id))
