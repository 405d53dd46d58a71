"""A fast path for the cached GETs, which are nearly all of the service's traffic.

Routed through FastAPI, a cache hit paid more CPU for the framework than for the Redis lookup and
the response together: matching the path against every route, building the Request, solving the
dependencies, validating the path parameter with pydantic and building the Response (issue 16's
profile). This ASGI layer sits in front of the routes and answers the requests it recognizes
exactly as they would: the same cached read (`reads`), the same body, status and headers.

Only unambiguous requests take it: a positive id without leading zeros below 2**63, a known
subject, a limit within range, at most one of each query parameter. Everything else (a bad id, a
trailing slash, an unknown subject, a HEAD) goes to the FastAPI routes, which validate, answer
422 and document the API. With a latency drill configured it is not installed at all: drills hang
on FastAPI's route templates.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.datastructures import State
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tutormax_service import queries, reads
from tutormax_service.errors import ServiceError
from tutormax_service.models import SUBJECTS

_ENTITY = r"([1-9][0-9]{0,18})"  # what pydantic reads as the same int, and nothing else
_BY_ID = re.compile(rf"/api/(?:tutors/{_ENTITY}/(dashboard|feedback)|students/{_ENTITY}/history)")
_MAX_ID = 2**63
_FIXED = {"/api/admin/overview": reads.admin_overview, "/api/admin/analytics": reads.admin_analytics}
_SUBJECTS = frozenset(SUBJECTS)
_LIMIT = re.compile(r"[1-9][0-9]{0,3}")
_DEFAULT_LIMIT = 20  # routes.tutors.list_tutors' default
_JSON = (b"content-type", b"application/json")
_HIT, _MISS = (b"x-cache", b"HIT"), (b"x-cache", b"MISS")


def _tutors_list_query(query_string: bytes) -> tuple[str | None, int] | None:
    """(subject, limit) when the query is one the route would accept as is; else None."""
    subject, limit = None, _DEFAULT_LIMIT
    seen: set[str] = set()
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            return None
        seen.add(name)
        if name == "subject":
            if value not in _SUBJECTS:
                return None
            subject = value
        elif name == "limit":
            if not _LIMIT.fullmatch(value) or int(value) > queries.MAX_TUTORS_LIST:
                return None
            limit = int(value)
    return subject, limit


class CachedReads:
    """ASGI middleware: GETs of the cached reads answered here, all else passed to `app`."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not await self._serve(scope, receive, send):
            await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> bool:
        path: str = scope["path"]
        # The path the routes match: behind a proxy's --root-path, without that prefix.
        if (root := scope.get("root_path", "")) and path.startswith(root):
            path = path[len(root) :]
        page: tuple[str | None, int] | None = None
        if (fixed := _FIXED.get(path)) is not None:
            what = fixed()
        elif path == "/api/tutors":
            if (page := _tutors_list_query(scope["query_string"])) is None:
                return False
            what = reads.tutors_list(page[0])
        elif (match := _BY_ID.fullmatch(path)) is not None:
            tutor, kind, student = match.groups()
            entity = int(tutor or student)
            if entity >= _MAX_ID:
                return False
            if student is not None:
                what = reads.student_history(entity)
            else:
                what = reads.tutor_dashboard(entity) if kind == "dashboard" else reads.tutor_feedback(entity)
        else:
            return False
        try:
            body, hit = await reads.read(self.state, what)
        except ServiceError as error:  # what the app's handler answers (the 404 of an unknown id)
            await JSONResponse({"detail": str(error)}, status_code=error.status_code)(scope, receive, send)
            return True
        if page is not None:
            body = reads.tutors_page(body, *page)
        # The headers FastAPI's Response(media_type="application/json", headers=X-Cache) sends.
        headers = [_HIT if hit else _MISS, (b"content-length", str(len(body)).encode()), _JSON]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True
