"""Per-run evidence a finding's likely cause is read from (`loadtest/explain.py`), stored beside the
run's history rows in `loadtest_evidence`, kept small: top statements only, under 50 KB a run.

Collected over the same steady window as the server-side figures (`server_metrics`):
- the statements' deltas (pg_stat_statements, the top `TOP_STATEMENTS` by total time), keyed by a
  normalised id (a hash of the statement's normalised text, stable across servers and resets);
- the cache's hits, misses and evictions (Redis INFO deltas);
- what the service database's active backends waited for, sampled every `WAIT_INTERVAL_S`
  (`pg_stat_activity`: lock waits, I/O, LWLocks), with the waiting statements' query ids;
- the service database's state after the run: the Alembic revision, its indexes, and a hash of the
  PostgreSQL settings that are not at their defaults.
`run_evidence` joins them with Locust's steady-state figures: per request, per endpoint (client p95
against the service's own `X-Response-Time` p95) and the service's CPU per request where it is local.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tutormax_ops.core.config import Settings
from tutormax_ops.loadtest.guard import service_db

if TYPE_CHECKING:
    import psycopg

    from tutormax_ops.collectors.locust import LocustRun
    from tutormax_ops.collectors.postgres.queries import StatementsSnapshot
    from tutormax_ops.loadtest.gap import GapReport

TOP_STATEMENTS = 25
QUERY_CHARS = 300  # enough to recognise a statement; the plugin's slow-queries page has the rest
WAIT_INTERVAL_S = 0.5  # a lock held for a second is seen; a sample costs well under a millisecond
# Waits of idle clients and background work are no evidence of a slow request; nor is a parallel
# query's coordination (its leader waiting for its workers): the slower statement is the cause.
IGNORED_WAITS = ("Client", "Activity", "Extension")
PARALLEL_QUERY_WAITS = ("IPC:Bgworker", "IPC:MessageQueue", "IPC:Parallel", "IPC:ExecuteGather", "IPC:Hash")
MAX_EVIDENCE_BYTES = 50_000
MONITORING_RELATIONS = ("pg_catalog.", "pg_stat_activity", "pg_stat_statements", "pg_settings")


def statement_id(query: str) -> str:
    """The normalised id of a statement: its normalised text, whitespace collapsed, hashed. A
    queryid changes when a table is recreated or the server differs; the text does not."""
    return hashlib.sha1(" ".join(query.split()).encode()).hexdigest()[:16]


def top_statements(before: StatementsSnapshot, after: StatementsSnapshot) -> dict[str, Any]:
    """The top statements of the window by total time, and the totals over every statement."""
    from tutormax_ops.collectors.postgres.queries import statement_deltas

    if not (before.available and after.available):
        return {"available": False, "reason": after.reason or before.reason}
    deltas = [delta for delta in statement_deltas(before, after) if not _monitoring(delta.query)]
    top = sorted(deltas, key=lambda delta: delta.total_ms, reverse=True)[:TOP_STATEMENTS]
    return {
        "available": True,
        "calls": sum(delta.calls for delta in deltas),
        "total_ms": round(sum(delta.total_ms for delta in deltas), 3),
        "top": [
            {
                "id": statement_id(delta.query),
                "queryid": delta.queryid,
                "query": " ".join(delta.query.split())[:QUERY_CHARS],
                "calls": delta.calls,
                "total_ms": round(delta.total_ms, 3),
                "mean_ms": round(delta.mean_ms, 4),
                "rows": delta.rows,
                "shared_blks_read": delta.shared_blks_read,
                "shared_blks_hit": delta.shared_blks_hit,
            }
            for delta in top
        ],
    }


def waiting_key(query_id: int | None, query: str | None) -> str:
    """A waiting statement's key: its query id where the server set one yet, else its text's
    `statement_id` (the text of a statement bound with $n parameters, as pg_stat_statements keeps it)."""
    return str(query_id) if query_id is not None else f"id:{statement_id(query or '')}"


def _monitoring(query: str) -> bool:
    """Statements on the catalogs and statistics views: this package's own sampling (and any other
    monitor's), not the service's work."""
    return any(name in query for name in MONITORING_RELATIONS)


def service_state(conn: psycopg.Connection, settings: Settings) -> dict[str, Any]:
    """The service database's revision, indexes and settings hash: what a change leaves behind."""
    from psycopg.rows import dict_row

    from tutormax_ops.core.db import load_sql
    from tutormax_ops.migrations.plan import current_revisions

    with conn.cursor(row_factory=dict_row) as cursor:
        state = cursor.execute(load_sql("tutormax_load_test/service_state.sql")).fetchone() or {}
    return {**state, "revisions": current_revisions(conn, settings)}


class WaitSampler:
    """Samples what the service database's active backends wait for, in a thread, until stopped.
    A database that does not answer is noted in the result, never raised: the run's figures stand."""

    def __init__(self, settings: Settings, interval_s: float = WAIT_INTERVAL_S) -> None:
        self._settings = settings
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="tutormax-wait-sampler", daemon=True)
        self._samples = 0
        self._by_event: Counter[str] = Counter()
        self._by_query: Counter[str] = Counter()  # lock waits only: `waiting_key` -> backend-samples
        self._error: str | None = None

    def start(self) -> WaitSampler:
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=10)
        return {
            "samples": self._samples,
            "interval_s": self._interval_s,
            "by_event": dict(self._by_event),
            "lock_by_query": dict(self._by_query),
            "error": self._error,
        }

    def _sample(self) -> None:
        from tutormax_ops.core.db import load_sql
        from tutormax_ops.loadtest.server_metrics import describe_error

        statement = load_sql("tutormax_load_test/wait_sample.sql")
        try:
            with service_db(self._settings, read_only=True) as conn:
                conn.autocommit = True  # each sample sees the backends of its own moment
                while not self._stop.is_set():
                    for wait_type, event, query_id, query, backends in conn.execute(statement).fetchall():
                        name = f"{wait_type}:{event}"
                        if wait_type in IGNORED_WAITS or name.startswith(PARALLEL_QUERY_WAITS):
                            continue
                        self._by_event[name] += backends
                        if wait_type == "Lock":
                            self._by_query[waiting_key(query_id, query)] += backends
                    self._samples += 1
                    self._stop.wait(self._interval_s)
        except Exception as error:  # noted with the evidence
            self._error = describe_error("wait sampling", error)


def run_evidence(
    run: LocustRun, server: Mapping[str, Any], gap: GapReport | None, *, min_requests: int
) -> dict[str, Any]:
    """This run's evidence, per request of the steady state Locust judged."""
    from tutormax_ops.loadtest.verdict import endpoint_name

    judged = run.judged_figures
    requests = judged.aggregate.requests or 0
    rps = judged.aggregate.steady_rps or 0.0
    raw = server.get("evidence") or {}
    statements = raw.get("statements") or {"available": False}
    if statements.get("available") and requests:
        statements = {
            **statements,
            "calls_per_request": statements["calls"] / requests,
            "ms_per_request": statements["total_ms"] / requests,
            "top": [{**row, "calls_per_request": row["calls"] / requests} for row in statements["top"]],
        }
    cache = server.get("cache") or {}
    hits, misses = cache.get("window_hits"), cache.get("window_misses")
    waits = raw.get("waits") or {}
    service = gap.cpu.service if gap is not None else None
    evidence = {
        "requests": requests,
        "rps": rps,
        "statements": statements,
        "cache": {
            "hit_rate": cache.get("window_hit_rate_percent"),
            "lookups_per_request": (hits + misses) / requests
            if requests and hits is not None and misses is not None
            else None,
            "evictions": cache.get("window_evicted_keys"),
        },
        # The service's processes together over the steady window, in CPU milliseconds per request.
        "service_cpu_ms_per_request": sum(service.values) / len(service.values) * 10 / rps
        if service is not None and rps
        else None,
        "endpoints": {
            endpoint_name(endpoint): {
                "requests": endpoint.requests,
                "client_p95_ms": endpoint.p95_ms,
                "server_p95_ms": endpoint.server_p95_ms,
            }
            for endpoint in judged.endpoints
            if endpoint.requests >= min_requests and endpoint.server_p95_ms is not None
        },
        "waits": {
            **waits,
            # Little's law: backends waiting on average, over requests per second, is the wait per request.
            "ms_per_request": _wait_ms_per_request(waits, rps),
        },
        "state": raw.get("state") or {},
    }
    evidence["bytes"] = len(json.dumps(evidence, default=str))
    return evidence


def _wait_ms_per_request(waits: Mapping[str, Any], rps: float) -> dict[str, float]:
    samples = waits.get("samples") or 0
    if not samples or not rps:
        return {}
    by_type: Counter[str] = Counter()
    for event, backends in waits.get("by_event", {}).items():
        by_type[event.split(":")[0]] += backends
    return {wait_type: backends / samples * 1000 / rps for wait_type, backends in by_type.items()}


def store_evidence(settings: Settings, dag_id: str, run_id: str, evidence: Mapping[str, Any]) -> None:
    """Upsert the run's evidence row (its run row must exist): a rerun replaces it."""
    from psycopg.types.json import Jsonb

    from tutormax_ops.core.storage import results_db, upsert_rows

    text = json.dumps(evidence, default=str)
    row = {"dag_id": dag_id, "run_id": run_id, "evidence": Jsonb(json.loads(text)), "bytes": len(text)}
    with results_db(settings) as conn:
        upsert_rows(
            conn, settings.storage.results_schema, "loadtest_evidence", [row], key=("dag_id", "run_id")
        )


def load_evidence(settings: Settings, dag_id: str, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The stored evidence of these runs, by run id (runs from before the evidence have none)."""
    from tutormax_ops.core.db import load_sql
    from tutormax_ops.core.storage import results_db

    if not run_ids:
        return {}
    statement = load_sql("tutormax_load_test/evidence_of_runs.sql", schema=settings.storage.results_schema)
    with results_db(settings) as conn:
        rows = conn.execute(statement, {"dag_id": dag_id, "run_ids": list(run_ids)}).fetchall()
    return {run_id: evidence for run_id, evidence in rows}


def changes_between(settings: Settings, since: Any, until: Any) -> list[dict[str, Any]]:
    """Migrations, maintenance and cache clears or warms this package ran between two moments."""
    from psycopg.rows import dict_row

    from tutormax_ops.core.db import load_sql
    from tutormax_ops.core.storage import results_db

    statement = load_sql("tutormax_load_test/changes_between.sql", schema=settings.storage.results_schema)
    with results_db(settings) as conn, conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(statement, {"since": since, "until": until}).fetchall()


def baseline_evidence(
    settings: Settings, dag_id: str, started_at: Any, history: Sequence[Mapping[str, Any]], *, runs: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The stored evidence of this run's baseline, the last `runs` of its history not flagged,
    oldest first, and the changes recorded since the newest of them."""
    unflagged = [run for run in history if run.get("regression_verdict") != "regression"]
    stored = load_evidence(settings, dag_id, [run["run_id"] for run in unflagged])
    with_evidence = [run for run in unflagged if run["run_id"] in stored][-runs:]
    if not with_evidence:
        return [], []
    changes = changes_between(settings, with_evidence[-1]["started_at"], started_at)
    return [stored[run["run_id"]] for run in with_evidence], changes
