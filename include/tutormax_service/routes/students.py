"""Student-facing reads."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tutormax_service import queries
from tutormax_service.cache import student_history_key
from tutormax_service.routes.common import CacheDep, Db, EntityId, cached_json

router = APIRouter(prefix="/api/students", tags=["students"])


@router.get("/{student_id}/history")
def student_history(student_id: EntityId, db: Db, cache: CacheDep) -> Response:
    return cached_json(
        cache, student_history_key(student_id), lambda: queries.student_history(db, student_id)
    )
