"""The fast path for cached GETs (`tutormax_service.fastpath`) answers exactly as the FastAPI routes
do, and takes only the requests it can answer that way; against real PostgreSQL and Redis."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from tutormax_service.app import create_app
from tutormax_service.datagen import generate
from tutormax_service.models import SUBJECTS
from tutormax_service.settings import Settings

REDIS_DB = 9  # a db number of its own on the shared test Redis (test_app uses 5, test_cache 6)
# Headers that differ between two answers to the same request by nature.
VARYING = {"x-response-time"}
GENERATED_AT = re.compile(rb'"generated_at":"[^"]*"')  # the admin aggregates' time of loading


@pytest.fixture(scope="module")
def settings(fresh_database, redis_url: str) -> Settings:
    url = fresh_database("tm_fastpath")
    generate(url, days=2, sessions_per_day=200, tutors=20, students=100, seed=5)
    return Settings(database_url=url, redis_url=f"{redis_url.rsplit('/', 1)[0]}/{REDIS_DB}")


@pytest.fixture(scope="module")
def rdb(settings: Settings) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(settings.redis_url)
    yield connection
    connection.close()


class RouterSeen:
    """Innermost middleware: records the requests that got past the fast path to the routes."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = scope["query_string"].decode()
            self.seen.append(f"{scope['method']} {scope['path']}{'?' + query if query else ''}")
        await self.app(scope, receive, send)


def _recorded(app: FastAPI) -> list[str]:
    seen: list[str] = []
    app.user_middleware.append(Middleware(RouterSeen, seen=seen))  # last in the list: innermost
    return seen


def _ids(client: TestClient) -> tuple[int, int]:
    sample = client.get("/api/ids/sample", params={"limit": 1}).json()
    return sample["tutor_ids"][0], sample["student_ids"][0]


def _paths(tutor: int, student: int) -> list[str]:
    return [
        f"/api/tutors/{tutor}/dashboard",
        f"/api/tutors/{tutor}/feedback",
        f"/api/students/{student}/history",
        "/api/tutors",
        f"/api/tutors?subject={SUBJECTS[0]}&limit=3",
        f"/api/tutors?limit=100&subject={SUBJECTS[1]}&unrelated=1",
        "/api/admin/overview",
        "/api/admin/analytics",
        "/api/tutors/999999/dashboard",  # 404 from the loader
        "/api/students/999999/history",
    ]


FALLING_THROUGH = [
    "/api/tutors/0/dashboard",  # 422
    "/api/tutors/007/dashboard",  # the same tutor to pydantic; left to it
    f"/api/tutors/{2**63}/dashboard",  # 422
    "/api/tutors/5/dashboard/",  # a trailing slash: the router's redirect
    "/api/tutors?subject=astrology",  # unknown subject: answered uncached by the route
    "/api/tutors?limit=0",  # 422
    "/api/tutors?limit=5&limit=6",
    "/api/tutors?subject=",
    "/api/tutors/5/reviews",  # 404 from the router
]


def _answer(client: TestClient, path: str) -> tuple[int, bytes, dict[str, str]]:
    """Status, body and headers, less what two loads of the same data differ in by nature."""
    response = client.get(path, follow_redirects=False)
    headers = {name: value for name, value in response.headers.items() if name not in VARYING}
    return response.status_code, GENERATED_AT.sub(b"", response.content), headers


def test_fast_path_answers_as_the_routes_do(settings: Settings, rdb: redis.Redis) -> None:
    routed_app = create_app(settings.model_copy(update={"fast_path": False}))
    fast_app = create_app(settings)
    with TestClient(routed_app) as routed, TestClient(fast_app) as fast:
        tutor, student = _ids(routed)
        cached = set()
        for path in [*_paths(tutor, student), *FALLING_THROUGH]:
            # A miss from each (the cache emptied before each), then a hit from each.
            misses = []
            for via in (routed, fast):
                rdb.flushdb()
                misses.append(_answer(via, path))
            hits = [_answer(via, path) for via in (routed, fast)]
            assert misses[0] == misses[1], path
            assert hits[0] == hits[1], path
            assert "x-response-time" in fast.get(path, follow_redirects=False).headers, path
            if hits[1][2].get("x-cache") == "HIT":
                cached.add(path)
        # The cached reads were hits the second time round, so both branches were compared.
        assert set(_paths(tutor, student)[:8]) <= cached


def test_only_unambiguous_gets_take_the_fast_path(settings: Settings) -> None:
    app = create_app(settings)
    seen = _recorded(app)
    with TestClient(app) as client:
        tutor, student = _ids(client)
        seen.clear()
        for path in _paths(tutor, student):
            assert client.get(path).status_code in (200, 404), path
        assert seen == []
        for path in FALLING_THROUGH:
            client.get(path, follow_redirects=False)
        client.head(f"/api/tutors/{tutor}/dashboard")
        assert seen == [*(f"GET {path}" for path in FALLING_THROUGH), f"HEAD /api/tutors/{tutor}/dashboard"]


@pytest.mark.parametrize(
    "change",
    [{"fast_path": False}, {"injected_latency_ms": {"/api/tutors/{tutor_id}/dashboard": 1.0}}],
    ids=["turned off", "latency drill"],
)
def test_without_the_fast_path_the_routes_answer_everything(settings: Settings, change: dict) -> None:
    app = create_app(settings.model_copy(update=change))
    seen = _recorded(app)
    with TestClient(app) as client:
        tutor, student = _ids(client)
        seen.clear()
        paths = _paths(tutor, student)
        for path in paths:
            client.get(path)
        assert seen == [f"GET {path}" for path in paths]
