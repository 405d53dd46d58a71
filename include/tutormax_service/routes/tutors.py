"""Tutor browsing, dashboards and reviews."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from tutormax_service import queries
from tutormax_service.cache import tutor_dashboard_key, tutor_feedback_key, tutors_list_key
from tutormax_service.models import SUBJECTS
from tutormax_service.routes.common import CacheDep, Db, EntityId, cache_header, cached_json, utcnow

router = APIRouter(prefix="/api/tutors", tags=["tutors"])


@router.get("")
def list_tutors(
    db: Db,
    cache: CacheDep,
    subject: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_TUTORS_LIST)] = 20,
) -> Response:
    if subject is not None and subject not in SUBJECTS:
        # Unknown subjects would each mint a cache key; answering directly keeps the keyspace bounded.
        return JSONResponse({"subject": subject, "count": 0, "tutors": []})
    body, hit = cache.get_or_load(tutors_list_key(subject), lambda: queries.tutors_list(db, subject))
    tutors = json.loads(body)["tutors"][:limit]
    return JSONResponse(
        {"subject": subject, "count": len(tutors), "tutors": tutors}, headers=cache_header(hit)
    )


@router.get("/{tutor_id}/dashboard")
def tutor_dashboard(tutor_id: EntityId, db: Db, cache: CacheDep) -> Response:
    return cached_json(
        cache, tutor_dashboard_key(tutor_id), lambda: queries.tutor_dashboard(db, tutor_id, utcnow())
    )


@router.get("/{tutor_id}/feedback")
def tutor_feedback(tutor_id: EntityId, db: Db, cache: CacheDep) -> Response:
    return cached_json(cache, tutor_feedback_key(tutor_id), lambda: queries.tutor_feedback(db, tutor_id))
