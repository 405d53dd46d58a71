"""The ranking of suspects (loadtest.explain) on evidence shaped as `evidence.run_evidence` makes it:
each known cause, moved beyond a baseline of runs that differ by ordinary noise, comes out on top;
the same baseline's own noise claims nothing."""

from __future__ import annotations

import copy
import statistics
from datetime import UTC, datetime
from typing import Any

import pytest

from tutormax_ops.loadtest import explain
from tutormax_ops.loadtest.evidence import statement_id

DASHBOARD_SQL = (
    "SELECT sessions.id FROM sessions WHERE sessions.tutor_id = $1 AND sessions.scheduled_at >= $2"
)
INSERT_SQL = (
    "INSERT INTO sessions (tutor_id, student_id, scheduled_at) VALUES ($1, $2, $3) RETURNING sessions.id"
)
TUTORS = "GET /api/tutors"
HISTORY = "GET /api/students/{student_id}/history"


def statement(
    query: str, queryid: int, *, calls: int, mean_ms: float, requests: int = 1000
) -> dict[str, Any]:
    return {
        "id": statement_id(query),
        "queryid": queryid,
        "query": query,
        "calls": calls,
        "total_ms": calls * mean_ms,
        "mean_ms": mean_ms,
        "rows": calls * 3,
        "shared_blks_read": calls // 10,
        "shared_blks_hit": calls * 5,
        "calls_per_request": calls / requests,
    }


def evidence(wobble: float = 1.0, **changes: Any) -> dict[str, Any]:
    """A run of 1,000 requests; `wobble` scales every time a little, as run-to-run noise does."""
    top = [
        statement(DASHBOARD_SQL, 11, calls=300, mean_ms=0.4 * wobble),
        statement(INSERT_SQL, 12, calls=40, mean_ms=1.0 * wobble),
    ]
    found = {
        "requests": 1000,
        "rps": 40.0,
        "statements": {
            "available": True,
            "calls": 2000,
            "total_ms": 400 * wobble,
            "calls_per_request": 2.0,
            "ms_per_request": 0.4 * wobble,
            "top": top,
        },
        "cache": {"hit_rate": 90 + wobble, "lookups_per_request": 0.8, "evictions": 0},
        "service_cpu_ms_per_request": 4.0 * wobble,
        "endpoints": {
            TUTORS: {"requests": 500, "client_p95_ms": 20 * wobble, "server_p95_ms": 12 * wobble},
            HISTORY: {"requests": 200, "client_p95_ms": 30 * wobble, "server_p95_ms": 20 * wobble},
        },
        "waits": {
            "samples": 20,
            "interval_s": 1.0,
            "by_event": {"LWLock:WALWrite": 1},
            "lock_by_query": {},
            "ms_per_request": {"LWLock": 0.05 * wobble},
        },
        "state": {
            "revisions": ["0003"],
            "indexes": ["sessions.ix_sessions_tutor_id_scheduled_at"],
            "pg_settings_hash": "abc",
        },  # fmt: skip
    }
    for path, value in changes.items():
        target = found
        *parents, leaf = path.split("__")
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[leaf] = value
    return found


BASELINE = [evidence(1.0), evidence(1.1), evidence(0.9), evidence(1.05)]


def ranked(current: dict[str, Any], changes: list[dict[str, Any]] | None = None) -> list:
    suspects, note = explain.rank_suspects(current, BASELINE, changes or [])
    assert note == ""
    return suspects


@pytest.mark.parametrize("wobble", [0.9, 1.0, 1.12])
def test_an_unchanged_run_claims_no_suspect(wobble: float) -> None:
    assert ranked(evidence(wobble)) == []


def test_a_statement_slower_per_call_names_its_text_and_mean_and_the_dropped_index() -> None:
    current = evidence(statements__top__0__mean_ms=6.0)
    current["state"]["indexes"] = []
    [top, *others] = ranked(current)
    assert top.kind == explain.SLOWER and top.statement_id == statement_id(DASHBOARD_SQL)
    before = statistics.median(run["statements"]["top"][0]["mean_ms"] for run in BASELINE)
    assert f"{before:.2f} → 6.00 ms per call" in top.summary and "0.30 calls per request" in top.summary
    assert "sessions.ix_sessions_tutor_id_scheduled_at dropped" in top.summary
    assert top.explains_ms == pytest.approx((6.0 - before) * 0.3)
    assert top.confidence == "high"
    assert others == []  # the dropped index is the statement's evidence, not a suspect of its own


def test_a_lower_hit_rate_is_the_cause_and_the_extra_calls_its_evidence() -> None:
    current = evidence(
        cache__hit_rate=40.0, statements__top__0__calls_per_request=2.0, statements__ms_per_request=1.1
    )
    [top, *others] = ranked(current)
    assert top.kind == explain.CACHE and "91.0% → 40.0%" in top.summary
    assert any(
        "ran more as a result" in line and "0.30 → 2.00 calls per request" in line for line in top.evidence
    )
    assert all(s.kind != explain.MORE_CALLS for s in others)


def test_more_statements_per_request_without_a_cache_change_is_an_n_plus_one() -> None:
    [top] = ranked(evidence(statements__top__0__calls_per_request=3.0))
    assert top.kind == explain.MORE_CALLS and "0.30 → 3.00 calls per request" in top.summary


def test_more_cpu_per_request_absorbs_the_queueing_it_causes_outside_the_handler() -> None:
    current = evidence(service_cpu_ms_per_request=12.0)
    current["endpoints"][HISTORY] = {"requests": 200, "client_p95_ms": 60, "server_p95_ms": 20}
    [top] = ranked(current)
    assert top.kind == explain.CPU and "→ 12.0 ms" in top.summary
    assert any(line.startswith("queued for the busy service") for line in top.evidence)


def test_time_outside_the_handler_needs_a_flat_server_time_and_concerns_its_endpoint() -> None:
    current = evidence()
    current["endpoints"][TUTORS] = {"requests": 500, "client_p95_ms": 70, "server_p95_ms": 12}
    [top] = ranked(current)
    assert top.kind == explain.OUTSIDE and top.scopes == (TUTORS,)
    assert explain.suspects_for([top], HISTORY) == [] and explain.suspects_for([top], TUTORS) == [top]
    # The same growth in the client's time with the server's time grown as much is inside the service.
    current["endpoints"][TUTORS]["server_p95_ms"] = 62
    assert all(s.kind != explain.OUTSIDE for s in ranked(current))


@pytest.mark.parametrize("waiting", ["12", f"id:{statement_id(INSERT_SQL)}"], ids=["query id", "text"])
def test_lock_waits_absorb_the_statement_that_waited(waiting: str) -> None:
    current = evidence(statements__top__1__mean_ms=400.0)
    current["waits"] |= {
        "by_event": {"Lock:relation": 30},
        "lock_by_query": {waiting: 30},
        "ms_per_request": {"Lock": 37.5, "LWLock": 0.05},
    }
    [top] = ranked(current)
    assert top.kind == explain.WAITS and top.summary.startswith("lock waits") and "relation 30" in top.summary
    assert any("waited, and slower" in line and "INSERT INTO sessions" in line for line in top.evidence)


def test_a_recorded_change_with_no_figure_moved_is_a_low_confidence_suspect() -> None:
    migration = {"kind": "migration", "run_id": "m1", "started_at": datetime(2026, 1, 2, tzinfo=UTC),
                 "status": "success", "summary": {"from": "0002", "target": "0003"}}  # fmt: skip
    [change] = ranked(evidence(), [migration])
    assert change.kind == explain.CHANGE and change.confidence == "low" and "0002 → 0003" in change.summary


def test_without_baseline_evidence_nothing_is_claimed_and_the_note_says_why() -> None:
    for baseline in ([], BASELINE[:1]):
        suspects, note = explain.rank_suspects(evidence(statements__top__0__mean_ms=60.0), baseline, [])
        assert suspects == [] and note == explain.NO_BASELINE


def test_suspects_rank_by_the_time_they_account_for() -> None:
    current = copy.deepcopy(evidence(statements__top__0__mean_ms=4.0, service_cpu_ms_per_request=30.0))
    kinds = [s.kind for s in ranked(current)]
    assert kinds == [explain.CPU, explain.SLOWER]  # 26 ms of CPU per request against 1.1 ms of statement time
