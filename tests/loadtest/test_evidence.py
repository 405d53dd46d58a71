"""The per-run evidence (loadtest.evidence) against a real PostgreSQL (the test service database, which
is also the results database here): wait events sampled while a
lock is held, the statements' deltas with their block reads, the service database's state, and the
evidence row stored once however often a run is stored."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from tutormax_ops.collectors.postgres.queries import statements_snapshot
from tutormax_ops.core.config import load_settings
from tutormax_ops.core.registry import RunRecord, record_run
from tutormax_ops.core.storage import ensure_results_schema, upsert_rows
from tutormax_ops.loadtest.evidence import (
    MAX_EVIDENCE_BYTES,
    WaitSampler,
    load_evidence,
    service_state,
    statement_id,
    store_evidence,
    top_statements,
    waiting_key,
)


@pytest.fixture
def service(airflow_connections, service_db_url: str) -> str:
    with psycopg.connect(service_db_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return service_db_url


def test_the_sampler_sees_an_insert_waiting_for_a_table_lock(service: str) -> None:
    settings = load_settings()
    sampler = WaitSampler(settings, interval_s=0.2).start()
    marker = uuid.uuid4().hex
    with psycopg.connect(service) as holder:
        holder.execute("LOCK TABLE tutors IN SHARE ROW EXCLUSIVE MODE")

        def blocked_update() -> None:
            with psycopg.connect(service, autocommit=True) as writer:
                writer.execute("UPDATE tutors SET bio = %s WHERE id = 1", (marker,))

        writer = threading.Thread(target=blocked_update)
        writer.start()
        time.sleep(4)  # about 20 samples at 0.2 s; 3 sightings are needed, even on a loaded machine
        holder.rollback()
    writer.join(timeout=10)
    waits = sampler.stop()
    assert waits["error"] is None
    assert waits["by_event"].get("Lock:relation", 0) >= 3, waits
    # The waiting UPDATE, by its query id or (waiting for the table's lock in parse analysis, before
    # the server sets one) by its text as bound with $n parameters.
    with psycopg.connect(service) as conn:
        query_ids = {
            str(row[0])
            for row in conn.execute(
                "SELECT queryid FROM pg_stat_statements WHERE query LIKE 'UPDATE tutors SET bio%%'"
            )
        }
    expected = query_ids | {waiting_key(None, "UPDATE tutors SET bio = $1 WHERE id = 1")}
    assert set(waits["lock_by_query"]) & expected, (waits["lock_by_query"], expected)


def test_statement_deltas_carry_block_reads_and_the_state_names_indexes_and_revision(service: str) -> None:
    settings = load_settings()
    query = "SELECT count(*) FROM sessions WHERE tutor_id = %s"
    with psycopg.connect(service, autocommit=True) as conn:
        before = statements_snapshot(conn)
        for tutor in range(1, 31):
            conn.execute(query, (tutor,))
        after = statements_snapshot(conn)
        state = service_state(conn, settings)
    found = top_statements(before, after)
    [row] = [r for r in found["top"] if "FROM sessions WHERE tutor_id" in r["query"]]
    assert row["calls"] == 30 and row["id"] == statement_id(row["query"])
    assert row["shared_blks_hit"] + row["shared_blks_read"] > 0
    assert found["calls"] >= 30 and len(found["top"]) <= 25
    assert "sessions.ix_sessions_tutor_id_scheduled_at" in state["indexes"]
    assert state["revisions"] and state["pg_settings_hash"]


def test_a_rerun_replaces_the_evidence_row(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    schema = f"ev_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("TUTORMAX_OPS__STORAGE__RESULTS_SCHEMA", schema)
    settings = load_settings()
    with psycopg.connect(service, autocommit=True) as conn:
        ensure_results_schema(conn, schema)
        record_run(
            conn, schema, RunRecord("d", "r", "load_test", datetime(2026, 1, 1, tzinfo=UTC), "pass", "smoke")
        )
        upsert_rows(conn, schema, "loadtest_runs", [{"dag_id": "d", "run_id": "r", "profile": "smoke",
                    "started_at": "2026-01-01T00:00:00Z", "valid": True}], key=("dag_id", "run_id"))  # fmt: skip
    store_evidence(settings, "d", "r", {"requests": 1, "top": ["first"]})
    store_evidence(settings, "d", "r", {"requests": 2, "top": ["second"]})
    assert load_evidence(settings, "d", ["r", "missing"]) == {"r": {"requests": 2, "top": ["second"]}}
    with psycopg.connect(service) as conn:
        rows = conn.execute(
            psycopg.sql.SQL("SELECT bytes FROM {} WHERE run_id = 'r'").format(
                psycopg.sql.Identifier(schema, "loadtest_evidence")
            )
        ).fetchall()
        conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(schema)))
    assert len(rows) == 1 and 0 < rows[0][0] < MAX_EVIDENCE_BYTES
