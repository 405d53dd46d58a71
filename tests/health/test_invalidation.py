"""The checklist's cache-invalidation probe against real HTTP services: the reference service, and two
services written here (one that invalidates on write, one that keeps serving its stale entry)."""

from __future__ import annotations

import psycopg
import pytest
from fastapi import FastAPI

from tutormax_ops.core.config import SettingsError, load_settings
from tutormax_ops.health.invalidation import check_invalidation, fill_body

GENERIC_PROBE = {
    "enabled": True,
    "read_path": "/v2/items/{item_id}",
    "write_method": "PUT",
    "write_path": "/v2/items/{item_id}",
    "write_body": {"id": "{item_id}", "note": "probe"},
    "values_sql": "SELECT 7 AS item_id",
}


def _cached_items_app(*, invalidates: bool) -> FastAPI:
    """A service that caches its reads in memory; a write drops the entry only if `invalidates`."""
    app = FastAPI()
    versions: dict[int, int] = {}
    cache: dict[int, dict] = {}

    @app.get("/v2/items/{item_id}")
    def read(item_id: int) -> dict:
        return cache.setdefault(item_id, {"id": item_id, "version": versions.get(item_id, 0)})

    @app.put("/v2/items/{item_id}")
    def write(item_id: int, body: dict) -> dict:
        assert body == {"id": item_id, "note": "probe"}  # the body's placeholders kept their types
        versions[item_id] = versions.get(item_id, 0) + 1
        if invalidates:
            cache.pop(item_id, None)
        return {"id": item_id, "version": versions[item_id]}

    return app


@pytest.mark.parametrize(("invalidates", "status"), [(True, "pass"), (False, "fail")])
def test_a_service_of_another_shape_is_judged_by_its_reads(serve, invalidates: bool, status: str) -> None:
    serve(_cached_items_app(invalidates=invalidates))
    verdict = check_invalidation(load_settings(health={"invalidation_probe": GENERIC_PROBE}))
    assert verdict.status == status, verdict
    assert "PUT /v2/items/7 answered 200" in verdict.evidence


@pytest.mark.server_variant
def test_the_reference_service_invalidates_on_booking(stack, airflow_connections, monkeypatch) -> None:
    if stack.endpoints.api_url:
        pytest.skip("the probe books a session: it runs only against the service the tests started")
    monkeypatch.setenv("TUTORMAX_OPS__HEALTH__INVALIDATION_PROBE__ENABLED", "true")
    before = _sessions(airflow_connections.db_url)
    verdict = check_invalidation(load_settings())
    assert verdict.status == "pass", verdict
    assert "POST /api/sessions answered 201" in verdict.evidence
    assert _sessions(airflow_connections.db_url) == before + 1


def test_off_unless_enabled_says_why() -> None:
    verdict = check_invalidation(load_settings())
    assert verdict.status == "cannot tell"
    assert "health.invalidation_probe" in verdict.evidence


def test_enabled_without_its_requests_names_the_missing_fields() -> None:
    with pytest.raises(SettingsError, match=r"health\.invalidation_probe.*read_path, write_path, values_sql"):
        load_settings(
            health={
                "invalidation_probe": {"enabled": True, "read_path": "", "write_path": "", "values_sql": ""}
            }
        )


def test_a_placeholder_without_its_column_names_the_field() -> None:
    with pytest.raises(KeyError, match=r"write_body: \{student\} is not a column"):
        fill_body({"who": "{student}"}, {"tutor": 1})


def _sessions(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
