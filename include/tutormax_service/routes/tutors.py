"""Tutor browsing, dashboards and reviews."""

from __future__ import annotations

import functools
import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from tutormax_service import queries
from tutormax_service.cache import dumps, tutor_dashboard_key, tutor_feedback_key, tutors_list_key
from tutormax_service.models import SUBJECTS
from tutormax_service.routes.common import EntityId, cache_header, cached_body, cached_json, utcnow

router = APIRouter(prefix="/api/tutors", tags=["tutors"])


@functools.lru_cache(maxsize=256)
def _list_page(cached: bytes, subject: str | None, limit: int) -> bytes:
    """The response body for one cached list and limit. Memoised on the cached bytes themselves, so
    a hit on an unchanged entry skips the decode and encode, and a changed entry is a new key."""
    tutors = json.loads(cached)["tutors"][:limit]
    return dumps({"subject": subject, "count": len(tutors), "tutors": tutors})


@router.get("")
async def list_tutors(
    request: Request,
    subject: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_TUTORS_LIST)] = 20,
) -> Response:
    if subject is not None and subject not in SUBJECTS:
        # Unknown subjects would each mint a cache key; answering directly keeps the keyspace bounded.
        return JSONResponse({"subject": subject, "count": 0, "tutors": []})
    body, hit = await cached_body(
        request, tutors_list_key(subject), lambda db: queries.tutors_list(db, subject)
    )
    return Response(
        _list_page(body, subject, limit), media_type="application/json", headers=cache_header(hit)
    )


@router.get("/{tutor_id}/dashboard")
async def tutor_dashboard(tutor_id: EntityId, request: Request) -> Response:
    return await cached_json(
        request, tutor_dashboard_key(tutor_id), lambda db: queries.tutor_dashboard(db, tutor_id, utcnow())
    )


@router.get("/{tutor_id}/feedback")
async def tutor_feedback(tutor_id: EntityId, request: Request) -> Response:
    return await cached_json(
        request, tutor_feedback_key(tutor_id), lambda db: queries.tutor_feedback(db, tutor_id)
    )
