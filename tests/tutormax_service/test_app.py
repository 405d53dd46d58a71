"""HTTP behaviour of the service against real PostgreSQL and Redis (FastAPI TestClient)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from tutormax_service.app import create_app
from tutormax_service.cache import (
    ADMIN_ANALYTICS_KEY,
    ADMIN_OVERVIEW_KEY,
    HITS_KEY,
    MISSES_KEY,
    student_history_key,
    tutor_dashboard_key,
    tutor_feedback_key,
    tutors_list_key,
)
from tutormax_service.datagen import generate
from tutormax_service.models import SUBJECTS
from tutormax_service.queries import analytics_window
from tutormax_service.settings import Settings

# A db number of its own on the shared test Redis, so clearing the cache touches no one else.
REDIS_DB = 5
RESPONSE_TIME = re.compile(r"^\d+\.\d{2}ms$")


@pytest.fixture(scope="module")
def database_url(fresh_database) -> str:
    url = fresh_database("tm_app")
    generate(url, days=3, sessions_per_day=400, tutors=40, students=300, seed=11)
    return url


@pytest.fixture(scope="module")
def service_redis_url(redis_url: str) -> str:
    return f"{redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"


@pytest.fixture(scope="module")
def settings(database_url: str, service_redis_url: str) -> Settings:
    return Settings(database_url=database_url, redis_url=service_redis_url, cache_ttl_seconds=120)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        assert test_client.post("/api/performance/cache/clear").status_code == 200
        yield test_client


@pytest.fixture(scope="module")
def rdb(service_redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(service_redis_url)
    yield connection
    connection.close()


def _sql(database_url: str, sql: str, params: tuple | None = None) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


def _counters(rdb: redis.Redis) -> tuple[int, int]:
    hits, misses = rdb.mget(HITS_KEY, MISSES_KEY)
    return int(hits or 0), int(misses or 0)


def _any_tutor(database_url: str) -> tuple[int, list[str]]:
    [(tutor_id, subjects)] = _sql(
        database_url, "SELECT id, subjects FROM tutors WHERE is_active ORDER BY rating_count DESC, id LIMIT 1"
    )
    return tutor_id, subjects


def _feedbackless_session(database_url: str) -> tuple[int, int, int]:
    [row] = _sql(
        database_url,
        "SELECT s.id, s.tutor_id, s.student_id FROM sessions s WHERE s.status = 'completed'"
        " AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.session_id = s.id) ORDER BY s.id LIMIT 1",
    )
    return row


def _booking(tutor_id: int, subject: str, student_id: int = 1, minutes_ahead: int = 90) -> dict:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes_ahead)
    return {
        "tutor_id": tutor_id,
        "student_id": student_id,
        "subject": subject,
        "scheduled_at": when.isoformat(),
        "duration_minutes": 60,
    }


# --- health and middleware -------------------------------------------------------------


def test_health_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True, "redis": True}


def test_health_degraded_and_reads_fall_back_when_redis_is_down(database_url: str) -> None:
    settings = Settings(database_url=database_url, redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings)) as down:
        response = down.get("/health")
        assert response.status_code == 503
        assert response.json() == {"status": "degraded", "database": True, "redis": False}
        dashboard = down.get("/api/tutors/1/dashboard")
        assert dashboard.status_code == 200
        assert dashboard.headers["X-Cache"] == "MISS"
        assert down.post("/api/performance/cache/clear").status_code == 503
        assert down.get("/api/performance/summary").json()["cache"]["connected"] is False


def test_health_degraded_when_database_is_down(service_redis_url: str) -> None:
    settings = Settings(database_url="postgresql://postgres@127.0.0.1:1/none", redis_url=service_redis_url)
    with TestClient(create_app(settings)) as down:
        response = down.get("/health")
        assert response.status_code == 503
        assert response.json() == {"status": "degraded", "database": False, "redis": True}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health"),
        ("GET", "/api/tutors"),
        ("GET", "/api/tutors/999999/dashboard"),
        ("GET", "/api/tutors/abc/dashboard"),
        ("POST", "/api/sessions"),
        ("GET", "/api/performance/summary"),
    ],
)
def test_every_response_has_x_response_time(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert RESPONSE_TIME.match(response.headers["X-Response-Time"]), response.headers


def test_injected_latency_slows_only_the_configured_route(settings: Settings) -> None:
    slowed = settings.model_copy(update={"injected_latency_ms": {"/api/tutors/{tutor_id}/dashboard": 150.0}})
    with TestClient(create_app(slowed)) as test_client:
        slow = test_client.get("/api/tutors/1/dashboard")
        fast = test_client.get("/health")
    assert slow.status_code == 200
    assert float(slow.headers["X-Response-Time"].removesuffix("ms")) >= 150
    assert float(fast.headers["X-Response-Time"].removesuffix("ms")) < 150


# --- reads and read-through caching ----------------------------------------------------


def test_dashboard_is_read_through_cached(client: TestClient, rdb: redis.Redis, database_url: str) -> None:
    tutor_id, _ = _any_tutor(database_url)
    key = tutor_dashboard_key(tutor_id)
    rdb.delete(key)
    hits, misses = _counters(rdb)

    first = client.get(f"/api/tutors/{tutor_id}/dashboard")
    assert first.status_code == 200
    assert first.headers["X-Cache"] == "MISS"
    assert 0 < rdb.ttl(key) <= 120
    second = client.get(f"/api/tutors/{tutor_id}/dashboard")
    assert second.headers["X-Cache"] == "HIT"
    assert second.json() == first.json()
    assert _counters(rdb) == (hits + 1, misses + 1)

    body = first.json()
    assert body["tutor"]["id"] == tutor_id
    assert set(body) == {
        "tutor",
        "avg_rating",
        "rating_count",
        "last_30_days",
        "upcoming_sessions",
        "recent_feedback",
    }
    [(rating_count,)] = _sql(database_url, "SELECT rating_count FROM tutors WHERE id = %s", (tutor_id,))
    assert body["rating_count"] == rating_count
    assert len(body["recent_feedback"]) <= 10
    assert all(1 <= item["rating"] <= 5 for item in body["recent_feedback"])


def test_unknown_ids_are_404_and_bad_ids_422(client: TestClient, rdb: redis.Redis) -> None:
    for path in (
        "/api/tutors/999999/dashboard",
        "/api/tutors/999999/feedback",
        "/api/students/999999/history",
    ):
        response = client.get(path)
        assert response.status_code == 404
        assert "not found" in response.json()["detail"]
    assert rdb.exists(tutor_dashboard_key(999999)) == 0  # misses are not cached as null
    assert client.get("/api/tutors/0/dashboard").status_code == 422
    assert client.get(f"/api/tutors/{2**63}/dashboard").status_code == 422


def test_tutors_list_filters_limits_and_sorts(client: TestClient) -> None:
    everyone = client.get("/api/tutors", params={"limit": 100}).json()
    assert everyone["subject"] is None
    assert everyone["count"] == len(everyone["tutors"]) > 0
    ratings = [t["avg_rating"] for t in everyone["tutors"] if t["avg_rating"] is not None]
    assert ratings == sorted(ratings, reverse=True)
    assert set(everyone["tutors"][0]) == {
        "id", "full_name", "subjects", "hourly_rate_cents", "avg_rating", "rating_count",
    }  # fmt: skip

    subject = everyone["tutors"][0]["subjects"][0]
    filtered = client.get("/api/tutors", params={"subject": subject, "limit": 3})
    assert filtered.json()["count"] <= 3
    assert all(subject in t["subjects"] for t in filtered.json()["tutors"])
    # Same key for any limit: the second call is a hit and slices the cached list.
    again = client.get("/api/tutors", params={"subject": subject, "limit": 1})
    assert again.headers["X-Cache"] == "HIT"
    assert again.json()["tutors"] == filtered.json()["tutors"][:1]

    assert client.get("/api/tutors", params={"subject": "astrology"}).json()["count"] == 0
    assert client.get("/api/tutors", params={"limit": 0}).status_code == 422


def test_tutor_feedback(client: TestClient, database_url: str) -> None:
    tutor_id, _ = _any_tutor(database_url)
    body = client.get(f"/api/tutors/{tutor_id}/feedback").json()
    assert body["tutor_id"] == tutor_id
    assert set(body["distribution"]) == {"1", "2", "3", "4", "5"}
    assert sum(body["distribution"].values()) == body["rating_count"]
    dates = [item["created_at"] for item in body["items"]]
    assert dates == sorted(dates, reverse=True)


def test_student_history(client: TestClient, database_url: str) -> None:
    [(student_id, sessions)] = _sql(
        database_url, "SELECT student_id, count(*) FROM sessions GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
    )
    body = client.get(f"/api/students/{student_id}/history").json()
    assert body["student"]["id"] == student_id
    assert sum(body["totals"].values()) == sessions
    assert len(body["sessions"]) == min(sessions, 50)
    assert {"tutor_name", "status", "rating", "cancelled_reason"} <= set(body["sessions"][0])


def test_admin_overview_and_analytics(client: TestClient, database_url: str) -> None:
    overview = client.get("/api/admin/overview").json()
    assert overview["tutors"]["total"] == 40
    assert overview["students"] == {"total": 300}
    assert set(overview) >= {"sessions_last_7_days", "sessions_next_24_hours", "feedback_last_30_days"}

    analytics = client.get("/api/admin/analytics").json()
    start, end = analytics_window(dt.datetime.now(dt.UTC))
    [(in_window,)] = _sql(
        database_url,
        "SELECT count(*) FROM sessions WHERE scheduled_at >= %s AND scheduled_at < %s",
        (start, end),
    )
    assert sum(day["sessions"] for day in analytics["sessions_per_day"]) == in_window
    assert sum(s["sessions"] for s in analytics["per_subject"]) == in_window
    assert {s["subject"] for s in analytics["per_subject"]} <= set(SUBJECTS)
    assert analytics["window"]["days"] == 30
    assert analytics["avg_rating"] is None or 1 <= analytics["avg_rating"] <= 5


def test_ids_sample_returns_real_ids(client: TestClient, database_url: str) -> None:
    body = client.get("/api/ids/sample", params={"limit": 5}).json()
    assert len(body["tutor_ids"]) == 5
    assert len(body["student_ids"]) == 5
    assert set(body["tutor_subjects"]) == {str(i) for i in body["tutor_ids"]}
    known = {row[0] for row in _sql(database_url, "SELECT id FROM students")}
    assert set(body["student_ids"]) <= known
    for session_id in body["session_ids"]:
        assert _sql(
            database_url,
            "SELECT status, (SELECT count(*) FROM feedback WHERE session_id = s.id) FROM sessions s WHERE id = %s",
            (session_id,),
        ) == [("completed", 0)]


def test_ids_sample_draws_without_repeats_from_current_rows(settings: Settings, database_url: str) -> None:
    # A snapshot age of 0 reloads it on every call, so the sample must match the tables right now.
    with TestClient(create_app(settings.model_copy(update={"id_snapshot_seconds": 0}))) as fresh:
        body = fresh.get("/api/ids/sample", params={"limit": 1000}).json()
    active = [row[0] for row in _sql(database_url, "SELECT id FROM tutors WHERE is_active")]
    students = [row[0] for row in _sql(database_url, "SELECT id FROM students")]
    assert sorted(body["tutor_ids"]) == sorted(active)
    assert sorted(body["student_ids"]) == sorted(students)
    assert len(set(body["session_ids"])) == len(body["session_ids"]) > 0


def test_tutors_page_follows_the_cached_list(client: TestClient, rdb: redis.Redis) -> None:
    first = client.get("/api/tutors", params={"limit": 5})
    again = client.get("/api/tutors", params={"limit": 5})
    assert again.headers["X-Cache"] == "HIT"
    assert again.json() == first.json()
    # Pages are memoised on the cached bytes: a changed entry must show, never the old page.
    cached = json.loads(rdb.get(tutors_list_key(None)))
    cached["tutors"][0]["full_name"] = "Renamed Tutor"
    rdb.set(tutors_list_key(None), json.dumps(cached))
    try:
        changed = client.get("/api/tutors", params={"limit": 5}).json()
        assert changed["tutors"][0]["full_name"] == "Renamed Tutor"
        assert changed["tutors"][1:] == first.json()["tutors"][1:]
    finally:
        rdb.unlink(tutors_list_key(None))


# --- writes and invalidation -----------------------------------------------------------


def test_booking_invalidates_exactly_the_affected_entries(
    client: TestClient, rdb: redis.Redis, database_url: str
) -> None:
    tutor_id, subjects = _any_tutor(database_url)
    student_id = 7
    affected = [tutor_dashboard_key(tutor_id), student_history_key(student_id), ADMIN_OVERVIEW_KEY]
    for path in (
        f"/api/tutors/{tutor_id}/dashboard",
        f"/api/students/{student_id}/history",
        "/api/admin/overview",
        "/api/admin/analytics",
        "/api/tutors",
        f"/api/tutors/{tutor_id}/feedback",
    ):
        client.get(path)
    payload = _booking(tutor_id, subjects[0], student_id, minutes_ahead=1)
    response = client.post("/api/sessions", json=payload)
    assert response.status_code == 201, response.text
    session = response.json()
    assert session["status"] == "scheduled"
    assert (session["tutor_id"], session["student_id"], session["subject"]) == (
        tutor_id,
        student_id,
        subjects[0],
    )

    assert rdb.exists(*affected) == 0
    _, window_end = analytics_window(dt.datetime.now(dt.UTC))
    booked_today = dt.datetime.fromisoformat(payload["scheduled_at"]) < window_end
    assert rdb.exists(ADMIN_ANALYTICS_KEY) == (0 if booked_today else 1)
    assert response.headers["X-Cache-Invalidated"] == str(len(affected) + booked_today)
    # Listings and reviews don't show bookings, so they stay cached.
    assert rdb.exists(tutors_list_key(None), tutor_feedback_key(tutor_id)) == 2

    dashboard = client.get(f"/api/tutors/{tutor_id}/dashboard")
    assert dashboard.headers["X-Cache"] == "MISS"
    assert dashboard.json()["upcoming_sessions"][0]["id"] == session["id"]
    history = client.get(f"/api/students/{student_id}/history").json()
    assert session["id"] in {item["id"] for item in history["sessions"]}


def test_booking_beyond_the_next_24_hours_keeps_the_overview(
    client: TestClient, rdb: redis.Redis, database_url: str
) -> None:
    tutor_id, subjects = _any_tutor(database_url)
    for path in ("/api/admin/overview", f"/api/tutors/{tutor_id}/dashboard", "/api/students/8/history"):
        client.get(path)
    assert rdb.exists(ADMIN_OVERVIEW_KEY, tutor_dashboard_key(tutor_id), student_history_key(8)) == 3
    response = client.post(
        "/api/sessions", json=_booking(tutor_id, subjects[0], 8, minutes_ahead=3 * 24 * 60)
    )
    assert response.status_code == 201, response.text
    # Dashboard and history only: the overview counts the next 24 hours, the analytics up to today.
    assert response.headers["X-Cache-Invalidated"] == "2"
    assert rdb.exists(ADMIN_OVERVIEW_KEY) == 1
    assert client.get("/api/admin/overview").headers["X-Cache"] == "HIT"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"scheduled_at": "2030-01-01T10:00:00"}, 422),  # naive timestamp
        ({"scheduled_at": "2020-01-01T10:00:00Z"}, 422),  # in the past
        ({"duration_minutes": 10}, 422),
        ({"subject": ""}, 422),
        ({"unexpected": 1}, 422),
        ({"tutor_id": 999999}, 404),
        ({"student_id": 999999}, 404),
        ({"subject": "__not_taught__"}, 422),
    ],
)
def test_booking_validation(client: TestClient, database_url: str, change: dict, status: int) -> None:
    tutor_id, subjects = _any_tutor(database_url)
    response = client.post("/api/sessions", json={**_booking(tutor_id, subjects[0]), **change})
    assert response.status_code == status, response.text


def test_booking_an_inactive_tutor_conflicts(client: TestClient, database_url: str) -> None:
    [(tutor_id, subjects)] = _sql(
        database_url,
        "UPDATE tutors SET is_active = false WHERE id = (SELECT max(id) FROM tutors) RETURNING id, subjects",
    )
    try:
        assert client.post("/api/sessions", json=_booking(tutor_id, subjects[0])).status_code == 409
    finally:
        _sql(database_url, "UPDATE tutors SET is_active = true WHERE id = %s RETURNING id", (tutor_id,))


def test_feedback_updates_rating_and_invalidates(
    client: TestClient, rdb: redis.Redis, database_url: str
) -> None:
    session_id, tutor_id, student_id = _feedbackless_session(database_url)
    [(subjects,)] = _sql(database_url, "SELECT subjects FROM tutors WHERE id = %s", (tutor_id,))
    before = client.get(f"/api/tutors/{tutor_id}/dashboard").json()
    for subject in subjects:
        client.get("/api/tutors", params={"subject": subject})
    for path in ("/api/tutors", f"/api/tutors/{tutor_id}/feedback", f"/api/students/{student_id}/history"):
        client.get(path)
    client.get("/api/admin/overview")
    unrelated = next(s for s in SUBJECTS if s not in subjects)
    client.get("/api/tutors", params={"subject": unrelated})

    response = client.post(f"/api/sessions/{session_id}/feedback", json={"rating": 5, "comment": "Great!"})
    assert response.status_code == 201, response.text
    assert response.json()["tutor_id"] == tutor_id
    assert dt.datetime.fromisoformat(response.json()["created_at"]) <= dt.datetime.now(dt.UTC)
    stale = [
        tutor_dashboard_key(tutor_id),
        tutor_feedback_key(tutor_id),
        student_history_key(student_id),
        ADMIN_OVERVIEW_KEY,
        tutors_list_key(None),
        *(tutors_list_key(subject) for subject in subjects),
    ]
    assert rdb.exists(*stale) == 0
    assert rdb.exists(tutors_list_key(unrelated)) == 1

    after = client.get(f"/api/tutors/{tutor_id}/dashboard").json()
    assert after["rating_count"] == before["rating_count"] + 1
    assert after["recent_feedback"][0]["session_id"] == session_id

    assert client.post(f"/api/sessions/{session_id}/feedback", json={"rating": 4}).status_code == 409


def test_feedback_validation(client: TestClient, database_url: str) -> None:
    session_id, _, _ = _feedbackless_session(database_url)
    # A scheduled session of its own: the generated days are past, and other tests book theirs.
    tutor_id, subjects = _any_tutor(database_url)
    booked = client.post("/api/sessions", json=_booking(tutor_id, subjects[0], student_id=11))
    assert booked.status_code == 201, booked.text
    scheduled_id = booked.json()["id"]
    assert client.post(f"/api/sessions/{session_id}/feedback", json={"rating": 6}).status_code == 422
    assert client.post(f"/api/sessions/{session_id}/feedback", json={}).status_code == 422
    assert client.post("/api/sessions/999999/feedback", json={"rating": 3}).status_code == 404
    assert client.post(f"/api/sessions/{scheduled_id}/feedback", json={"rating": 3}).status_code == 409


# --- performance endpoints -------------------------------------------------------------


def test_performance_summary_shape(client: TestClient) -> None:
    client.get("/api/admin/overview")
    body = client.get("/api/performance/summary").json()
    assert set(body) == {"timestamp", "health_score", "cache", "queries", "recommendations"}
    assert body["timestamp"].endswith("Z")
    assert 0 <= body["health_score"] <= 100
    assert set(body["cache"]) == {"hits", "misses", "hit_rate_percent", "connected"}
    assert set(body["queries"]) == {
        "total_queries",
        "slow_queries",
        "slow_query_rate",
        "avg_time_ms",
        "p95_time_ms",
    }
    assert body["recommendations"]
    for recommendation in body["recommendations"]:
        assert set(recommendation) == {"type", "severity", "message", "suggestion"}


def test_cache_and_query_stats(client: TestClient, rdb: redis.Redis) -> None:
    cache_stats = client.get("/api/performance/cache/stats").json()
    assert cache_stats["source"] == "service_counters"
    assert (cache_stats["hits"], cache_stats["misses"]) == _counters(rdb)
    lookups = cache_stats["hits"] + cache_stats["misses"]
    assert cache_stats["hit_rate_percent"] == pytest.approx(100 * cache_stats["hits"] / lookups, abs=0.01)

    before = client.get("/api/performance/query/stats").json()["total_queries"]
    client.get("/api/ids/sample", params={"limit": 2})  # uncached: always queries
    stats = client.get("/api/performance/query/stats").json()
    assert stats["total_queries"] > before
    assert 0 < stats["p50_time_ms"] <= stats["p95_time_ms"] <= stats["max_time_ms"]
    assert stats["slowest"][0]["statement"]


def test_stats_reset(client: TestClient, rdb: redis.Redis) -> None:
    assert client.post("/api/performance/stats/reset").json() == {"reset": True}
    assert _counters(rdb) == (0, 0)
    assert client.get("/api/performance/query/stats").json()["total_queries"] == 0


def test_slow_queries_report(client: TestClient, database_url: str) -> None:
    # A fresh database has no pg_stat_statements: the endpoint says so instead of failing.
    body = client.get("/api/performance/database/slow-queries").json()
    assert body["available"] is False
    assert "pg_stat_statements" in body["reason"]

    [(preloaded,)] = _sql(database_url, "SELECT current_setting('shared_preload_libraries')")
    if "pg_stat_statements" not in preloaded:
        return
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    try:
        client.get("/api/admin/analytics")
        body = client.get("/api/performance/database/slow-queries", params={"min_duration_ms": 0}).json()
        assert body["available"] is True
        assert body["queries"]
        assert {"query", "calls", "mean_time_ms", "total_time_ms"} <= set(body["queries"][0])
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP EXTENSION pg_stat_statements")


@pytest.mark.parametrize(
    "pattern", ["*", "tutormax:*", "tutormax:metrics:*", "other:cache:*", "tutormax:cache"]
)
def test_cache_clear_rejects_foreign_patterns(client: TestClient, pattern: str) -> None:
    response = client.post("/api/performance/cache/clear", params={"pattern": pattern})
    assert response.status_code == 400
    assert "tutormax:cache:" in response.json()["detail"]


def test_cache_clear_deletes_only_matching_cache_keys(client: TestClient, rdb: redis.Redis) -> None:
    rdb.set("tmtest:not-a-cache-key", "keep")
    try:
        client.get("/api/admin/overview")
        client.get("/api/tutors/1/dashboard")
        partial = client.post(
            "/api/performance/cache/clear", params={"pattern": "tutormax:cache:admin:*"}
        ).json()
        assert partial["deleted"] >= 1
        assert rdb.exists(ADMIN_OVERVIEW_KEY) == 0
        assert rdb.exists(tutor_dashboard_key(1)) == 1
        hits = _counters(rdb)
        assert client.post("/api/performance/cache/clear").json()["deleted"] >= 1
        assert rdb.exists(tutor_dashboard_key(1)) == 0
        assert rdb.get("tmtest:not-a-cache-key") == b"keep"
        assert _counters(rdb) == hits  # counters live outside the cache prefix
    finally:
        rdb.delete("tmtest:not-a-cache-key")


def test_warm_fills_popular_keys(client: TestClient, rdb: redis.Redis, database_url: str) -> None:
    client.post("/api/performance/cache/clear")
    body = client.post("/api/performance/cache/warm", params={"top_tutors": 5}).json()
    assert body["warmed"] == {"tutor_dashboards": 5, "admin": 2, "tutor_lists": len(SUBJECTS) + 1}
    assert body["total_keys"] == 5 + 2 + len(SUBJECTS) + 1
    top = [row[0] for row in _sql(
        database_url, "SELECT id FROM tutors WHERE is_active ORDER BY rating_count DESC, id LIMIT 5"
    )]  # fmt: skip
    expected = [tutor_dashboard_key(t) for t in top] + [ADMIN_OVERVIEW_KEY, ADMIN_ANALYTICS_KEY]
    expected += [tutors_list_key(s) for s in (None, *SUBJECTS)]
    assert rdb.exists(*expected) == len(expected)
    assert all(0 < rdb.ttl(key) <= 120 for key in expected)
    assert client.get("/api/admin/analytics").headers["X-Cache"] == "HIT"
    assert client.get(f"/api/tutors/{top[0]}/dashboard").headers["X-Cache"] == "HIT"
