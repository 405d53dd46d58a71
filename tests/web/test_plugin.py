"""The plugin's performance API inside Airflow's own API server app.

The app under test is `airflow.api_fastapi.app.create_app("core")`: it loads the plugins folder
through Airflow's plugin manager and mounts ours under /tutormax-ops, as `airflow api-server` does.
Logged-in requests carry a real JWT, signed by the configured auth manager with the configured
secret; the collectors run against a real PostgreSQL database and the test Redis.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from tutormax_ops.core.paths import PROJECT_ROOT
from tutormax_ops.devstack import stack as devstack

# The test AIRFLOW_HOME's generated JWT secret is short; production sets AIRFLOW__API_AUTH__JWT_SECRET.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
PREFIX = "/tutormax-ops/api/performance"
SESSIONS = 12_000  # above the suggestions' 10,000-row floor
STUDENTS = 1000
SEQ_SCANS = 60  # above the suggestions' 50-scan floor
TUTORS = 50
DDL = """
CREATE EXTENSION pg_stat_statements;
CREATE TABLE tutors (id bigint PRIMARY KEY, name text NOT NULL, subject text NOT NULL);
CREATE TABLE sessions (
    id bigint PRIMARY KEY,
    tutor_id bigint NOT NULL REFERENCES tutors,
    student_id bigint NOT NULL,
    started_at timestamptz NOT NULL,
    rating int
);
CREATE INDEX sessions_tutor_idx ON sessions (tutor_id);
CREATE INDEX sessions_tutor_started_idx ON sessions (tutor_id, started_at);
CREATE SCHEMA reporting;
CREATE TABLE reporting.daily (day date PRIMARY KEY, sessions int NOT NULL)
"""
ROUTES = [
    "/summary",
    "/cache/stats",
    "/query/stats",
    "/database/slow-queries?min_duration_ms=0",
    "/database/table/sessions/stats",
    "/database/table/sessions/indexes",
    "/database/table/sessions/index-suggestions",
]
MALICIOUS = [
    "users; DROP TABLE tutors",
    '"public"."sessions"',
    "sessions'--",
    "..%2Fetc",
    "public.sessions.extra",
    "pg_catalog.pg_class",  # a catalogue, not a user table
    "information_schema.tables",
    "missing",
    "%20sessions",
]


@dataclass(frozen=True)
class Api:
    client: object  # fastapi.testclient.TestClient
    headers: dict[str, str]
    db_url: str

    def get(self, path: str, *, login: bool = True):
        return self.client.get(PREFIX + path, headers=self.headers if login else {})


def create_schema(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        for statement in DDL.split(";"):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO tutors SELECT n, 'tutor ' || n, 'math' FROM generate_series(1, %s) AS n", (TUTORS,)
        )
        conn.execute(
            "INSERT INTO sessions SELECT n, 1 + n %% %s, n %% %s, now() - n * interval '1 minute', n %% 5 + 1 "
            "FROM generate_series(1, %s) AS n",
            (TUTORS, STUDENTS, SESSIONS),
        )
        conn.execute("INSERT INTO reporting.daily VALUES (current_date, %s)", (SESSIONS,))
        conn.execute("ANALYZE")
        # Traffic for pg_stat_statements: query figures, slow queries, and a seq-scan-heavy lookup
        # by an unindexed, selective column, which should earn an index suggestion.
        for rating in range(1, 6):
            conn.execute("SELECT count(*) FROM sessions WHERE rating = %s", (rating,))
        for student in range(SEQ_SCANS):
            conn.execute("SELECT id, started_at FROM sessions WHERE student_id = %s", (student,))


@pytest.fixture(scope="module")
def api(airflow_db: dict, fresh_database, redis_url: str) -> Iterator[Api]:
    from airflow.api_fastapi.app import create_app, get_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    db_url = fresh_database("plugin_api")
    create_schema(db_url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_TUTORMAX_DB", json.dumps(devstack.postgres_connection(db_url)))
        patch.setenv("AIRFLOW_CONN_TUTORMAX_REDIS", json.dumps(devstack.redis_connection(redis_url)))
        app = create_app("core")
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="ops", role="viewer"))
        with TestClient(app) as client:
            yield Api(client, {"Authorization": f"Bearer {token}"}, db_url)
        purge_cached_app()


def test_airflow_registers_the_app_under_its_prefix(api: Api) -> None:
    from airflow import plugins_manager

    from tutormax_ops.web.api import app

    apps, _ = plugins_manager.get_fastapi_plugins()
    assert {"app": app, "url_prefix": "/tutormax-ops", "name": "TutorMax Ops performance API"} in apps


def test_loading_the_plugin_does_not_build_the_app() -> None:
    """Every Airflow process loads plugins; only the API server should pay for FastAPI and the auth code."""
    probe = "import sys, tutormax_ops_plugin; print('tutormax_ops.web.api' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=devstack.python_env(PYTHONPATH=str(PROJECT_ROOT / "plugins")),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("route", ROUTES)
def test_anonymous_requests_get_401(api: Api, route: str) -> None:
    assert api.get(route, login=False).status_code == 401


def test_a_forged_token_is_refused(api: Api) -> None:
    response = api.client.get(PREFIX + "/cache/stats", headers={"Authorization": "Bearer not.a.jwt"})
    assert response.status_code in (401, 403)


def test_no_unauthenticated_docs(api: Api) -> None:
    for path in ("/tutormax-ops/docs", "/tutormax-ops/openapi.json"):
        assert api.client.get(path).status_code == 404


@pytest.mark.parametrize("route", ROUTES)
def test_logged_in_requests_get_200(api: Api, route: str) -> None:
    response = api.get(route)
    assert response.status_code == 200, response.text


def test_summary_has_the_seed_shape(api: Api, statements_preloaded: bool) -> None:
    body = api.get("/summary").json()
    assert set(body) == {"timestamp", "health_score", "cache", "queries", "recommendations"}
    assert set(body["cache"]) == {"hits", "misses", "hit_rate_percent", "connected"}
    assert body["cache"]["connected"] is True
    assert {"total_queries", "slow_queries", "slow_query_rate", "avg_time_ms", "p95_time_ms"} <= set(
        body["queries"]
    )
    if statements_preloaded:  # otherwise the figures are None and a recommendation says why
        assert body["queries"]["total_queries"] > 0
    assert 0 <= body["health_score"] <= 100
    assert body["recommendations"] and all(
        set(rec) == {"type", "severity", "message", "suggestion"} for rec in body["recommendations"]
    )


def test_query_figures(api: Api, statements_preloaded: bool) -> None:
    if not statements_preloaded:
        pytest.skip("this server does not preload pg_stat_statements")
    stats = api.get("/query/stats").json()
    assert stats["available"] is True and stats["p95_is_estimate"] is True
    slow = api.get("/database/slow-queries?min_duration_ms=0").json()
    assert slow["available"] is True and slow["min_duration_ms"] == 0
    assert any("FROM sessions WHERE rating" in query["query"] for query in slow["queries"])
    assert api.get("/database/slow-queries?min_duration_ms=-1").status_code == 422


@pytest.mark.parametrize(
    ("name", "schema", "table"),
    [
        ("sessions", "public", "sessions"),
        ("public.tutors", "public", "tutors"),
        ("reporting.daily", "reporting", "daily"),
    ],
)
def test_table_stats(api: Api, name: str, schema: str, table: str) -> None:
    body = api.get(f"/database/table/{name}/stats").json()
    with psycopg.connect(api.db_url) as conn:
        expected = conn.execute(
            "SELECT n_live_tup, pg_relation_size(relid) FROM pg_stat_user_tables WHERE schemaname = %s AND relname = %s",
            (schema, table),
        ).fetchone()
    assert (body["schema"], body["table"]) == (schema, table)
    assert (body["live_tuples"], body["heap_bytes"]) == expected
    assert body["live_tuples"] > 0


def test_table_indexes(api: Api) -> None:
    body = api.get("/database/table/sessions/indexes").json()
    assert (body["schema"], body["table"]) == ("public", "sessions")
    assert {index["index"] for index in body["indexes"]} == {
        "sessions_pkey",
        "sessions_tutor_idx",
        "sessions_tutor_started_idx",
    }
    assert [(row["index"], row["covering_index"]) for row in body["duplicates"]] == [
        ("sessions_tutor_idx", "sessions_tutor_started_idx")
    ]
    assert body["invalid"] == []


def test_index_suggestions(api: Api, statements_preloaded: bool) -> None:
    if not statements_preloaded:
        pytest.skip("suggestions come from pg_stat_statements, which this server does not preload")
    body = api.get("/database/table/sessions/index-suggestions").json()
    assert body["available"] is True
    suggestions = [(item["table"], item["columns"], item["sql"]) for item in body["suggestions"]]
    assert suggestions[0] == (
        "sessions",
        ["student_id"],
        'CREATE INDEX CONCURRENTLY ON "public"."sessions" ("student_id")',
    )
    assert {table for table, _, _ in suggestions} == {"sessions"}
    assert api.get("/database/table/tutors/index-suggestions").json()["suggestions"] == []


@pytest.mark.parametrize("name", MALICIOUS)
@pytest.mark.parametrize("view", ["stats", "indexes", "index-suggestions"])
def test_unknown_or_malicious_table_names_get_404(api: Api, name: str, view: str) -> None:
    assert api.get(f"/database/table/{name}/{view}").status_code == 404


def test_malicious_names_never_ran(api: Api, statements_preloaded: bool) -> None:
    with psycopg.connect(api.db_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_stat_user_tables").fetchone()[0] == 3
        if statements_preloaded:
            # pg_stat_statements is server-wide: other tests' databases (the Alembic downgrades) drop tables
            spliced = conn.execute(
                "SELECT count(*) FROM pg_stat_statements"
                " WHERE query ILIKE %s AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
                ("%DROP TABLE%",),
            ).fetchone()[0]
            assert spliced == 0


def test_unreachable_servers(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = devstack.free_port()
    monkeypatch.setenv(
        "AIRFLOW_CONN_TUTORMAX_DB",
        json.dumps(devstack.postgres_connection(f"postgresql://postgres:secret@127.0.0.1:{closed}/x")),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_TUTORMAX_REDIS", json.dumps(devstack.redis_connection(f"redis://127.0.0.1:{closed}/0"))
    )
    database = api.get("/query/stats")
    assert database.status_code == 503 and "secret" not in database.text
    cache = api.get("/cache/stats")
    assert cache.status_code == 200 and cache.json()["connected"] is False
