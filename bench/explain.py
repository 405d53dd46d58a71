"""Issue 29: does the load test name the cause of a regression? Known causes are injected into the
reference service one at a time, after a clean history of unchanged runs, and the top suspect of
`loadtest.explain` is checked against the injected one.

Every run is a short smoke run (the profile's users, `--run-time` s, fast path off so the drills'
hooks see every request), measured as the DAG measures it (`run.measured_load`: pg_stat_statements
and Redis INFO over the steady state, pg_stat_activity waits sampled each second) and judged as the
DAG judges it (`evidence.run_evidence`, `explain.rank_suspects`), against the unchanged runs so far.
The history is this bench's own, empty at the start (no earlier run's evidence exists). Each run
starts with the service's cache keys unlinked, so each run sees the same cold cache.

Cases, each followed by an unchanged run (which must claim no suspect):
- dropped index: `ix_sessions_tutor_id_scheduled_at`, which the tutor dashboard and feedback reads use;
- cache TTL 1 s (TUTORMAX_SERVICE_CACHE_TTL_SECONDS=1);
- CPU in a handler: `CPU_MS` of busy work on GET /api/tutors (TUTORMAX_SERVICE_INJECTED_CPU_MS);
- delay outside the service: a TCP proxy in front of it that delays each request by `PROXY_DELAY_MS`
  (on 127.0.0.2, so the service counts as remote, as it would behind a real proxy);
- a lock: `LOCK TABLE sessions IN SHARE ROW EXCLUSIVE MODE` held `LOCK_HOLD_S` of every
  `LOCK_EVERY_S`, which POST /api/sessions (an INSERT into sessions) waits for.

The cost of the evidence is timed on each run's own inputs: the extra queries (the service's state)
and computations (top statements, the run's evidence, the ranking) and the wait sampler's stop,
against the run's wall time (the reference); bytes are the evidence row's JSON. Ends with one JSON
line: explain_cases, explain_top1_correct, unchanged_runs_claiming, evidence_cost_pct,
evidence_bytes_max.

    PYTHONPATH=plugins:include .venv/bin/python bench/explain.py [--run-time 20] [--unchanged 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

from tutormax_ops.core.paths import STATE_DIR
from tutormax_ops.devstack import stack as devstack
from tutormax_ops.devstack.connections import http_connection
from tutormax_ops.loadtest import explain

DROPPED_INDEX = ("ix_sessions_tutor_id_scheduled_at", "sessions", "(tutor_id, scheduled_at)")
CPU_ROUTE, CPU_MS = "/api/tutors", 15
PROXY_DELAY_MS = 40
LOCK_HOLD_S, LOCK_EVERY_S = 2.5, 3.0
REMOTE_LOOPBACK = "127.0.0.2"  # on Linux all of 127/8 is the loopback; the load test sees a remote host


@contextlib.contextmanager
def dropped_index(db_url: str, **_: Any) -> Iterator[dict[str, str]]:
    name, table, columns = DROPPED_INDEX
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP INDEX {}").format(psycopg.sql.Identifier(name)))
    try:
        yield {}
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("CREATE INDEX {} ON {} {}").format(
                    psycopg.sql.Identifier(name), psycopg.sql.Identifier(table), psycopg.sql.SQL(columns)
                )
            )
            conn.execute(psycopg.sql.SQL("ANALYZE {}").format(psycopg.sql.Identifier(table)))


@contextlib.contextmanager
def short_ttl(db_url: str, **_: Any) -> Iterator[dict[str, str]]:
    yield {"TUTORMAX_SERVICE_CACHE_TTL_SECONDS": "1"}


@contextlib.contextmanager
def cpu_in_handler(db_url: str, **_: Any) -> Iterator[dict[str, str]]:
    yield {"TUTORMAX_SERVICE_INJECTED_CPU_MS": f"{CPU_ROUTE}={CPU_MS}"}


@contextlib.contextmanager
def held_lock(db_url: str, **_: Any) -> Iterator[dict[str, str]]:
    stop = threading.Event()

    def hold() -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            while not stop.is_set():
                with conn.transaction():
                    conn.execute("LOCK TABLE sessions IN SHARE ROW EXCLUSIVE MODE")
                    stop.wait(LOCK_HOLD_S)
                stop.wait(LOCK_EVERY_S - LOCK_HOLD_S)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        yield {}
    finally:
        stop.set()
        holder.join(timeout=10)


@contextlib.contextmanager
def delaying_proxy(upstream_port: int, delay_ms: float) -> Iterator[str]:
    """A TCP proxy on REMOTE_LOOPBACK that holds each chunk from the client `delay_ms` before
    forwarding it: every request arrives late, and the service's own time does not change."""
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if delay_s:
                    await asyncio.sleep(delay_s)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(devstack.LOOPBACK, upstream_port)
        await asyncio.gather(
            pipe(client_reader, up_writer, delay_ms / 1000), pipe(up_reader, client_writer, 0.0)
        )

    async def serve() -> None:
        ready["stop"] = asyncio.Event()
        server = await asyncio.start_server(handle, REMOTE_LOOPBACK, 0)
        ready["port"] = server.sockets[0].getsockname()[1]
        async with server:
            await ready["stop"].wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    devstack.wait_until(lambda: "port" in ready, timeout_s=10, what="the delaying proxy")
    try:
        yield f"http://{REMOTE_LOOPBACK}:{ready['port']}"
    finally:
        loop.call_soon_threadsafe(ready["stop"].set)
        thread.join(timeout=5)


CASES: dict[str, tuple[Callable[..., Any] | None, str]] = {
    "dropped index": (dropped_index, explain.SLOWER),
    "cache TTL 1 s": (short_ttl, explain.CACHE),
    "CPU in a handler": (cpu_in_handler, explain.CPU),
    "delay outside the service": (None, explain.OUTSIDE),
    "lock on sessions": (held_lock, explain.WAITS),
}


def clear_cache(redis_url: str) -> None:
    """Unlink the service's cache keys (SCAN and UNLINK, as the cache-clear DAG does)."""
    import redis

    from tutormax_ops.cache.keys import clear

    client = redis.Redis.from_url(redis_url)
    try:
        clear(client, "tutormax:cache:*", dry_run=False, scan_count=1000, unlink_batch=500)
    finally:
        client.close()


def measure(settings: Any, host: str, folder: Path, run_time: int) -> tuple[dict[str, Any], float, float]:
    """One run as the DAG measures it: (evidence, wall seconds, seconds the evidence cost)."""
    from tutormax_ops.collectors.locust import parse_run
    from tutormax_ops.collectors.postgres.queries import statements_snapshot
    from tutormax_ops.collectors.sampling import min_requests
    from tutormax_ops.core import reports
    from tutormax_ops.loadtest.evidence import WaitSampler, run_evidence, service_state, top_statements
    from tutormax_ops.loadtest.gap import judge_gap
    from tutormax_ops.loadtest.guard import service_db
    from tutormax_ops.loadtest.model import RunPlan
    from tutormax_ops.loadtest.run import measured_load

    profile = settings.profile("smoke")
    plan = RunPlan("smoke", host, profile.users, profile.spawn_rate, run_time, 0, "never", "manual")
    started = time.perf_counter()
    outcome, metrics = measured_load(plan, settings, folder, log=lambda _: None)
    wall_s = time.perf_counter() - started
    metrics = json.loads(reports.to_json(metrics))
    (folder / "cpu_samples.csv").write_text(
        reports.to_csv([dataclasses.asdict(sample) for sample in outcome.cpu_samples])
    )
    confidence = settings.loadtest.regression.confidence
    run = parse_run(
        csv_prefix=folder / "locust",
        json_path=folder / "locust.json",
        html_path=folder / "locust.html",
        log_text=(folder / "locust.log").read_text(errors="replace"),
        confidence=confidence,
        steady_after_s=plan.measure_after_s(settings.loadtest.warmup_fraction),
    )
    outcome_values = json.loads(reports.to_json({"window_opened_s": outcome.window_opened_s,
                                                  "service_processes": outcome.service_processes}))  # fmt: skip
    # The evidence's own cost, timed on this run's inputs: what the DAG does for it and nothing else.
    cost_started = time.perf_counter()
    WaitSampler(settings).start().stop()
    with service_db(settings, read_only=True) as conn:
        state_started = time.perf_counter()
        service_state(conn, settings)
        state_s = time.perf_counter() - state_started
        snapshot = statements_snapshot(conn)  # taken by the DAG anyway (query stats): not counted
    computed_started = time.perf_counter()
    top_statements(snapshot, snapshot)
    gap = judge_gap(run, plan, folder / "cpu_samples.csv", outcome_values, settings.loadtest)
    evidence = run_evidence(run, metrics, gap, min_requests=min_requests(confidence=confidence))
    cost_s = (state_started - cost_started) + state_s + (time.perf_counter() - computed_started)
    return evidence, wall_s, cost_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-time", type=int, default=20)
    parser.add_argument("--unchanged", type=int, default=3, help="unchanged runs before the first case")
    parser.add_argument("--cases", default=",".join(CASES), help="a comma-separated subset of the cases")
    args = parser.parse_args()

    from tutormax_ops.core.config import load_settings

    root = STATE_DIR / "bench" / f"explain-{os.getpid()}"
    rows: list[dict[str, Any]] = []
    with devstack.running_stack(root / "stack") as stack:
        db_url, redis_url = stack.endpoints.db_url, stack.endpoints.redis_url
        devstack.migrate_service_schema(db_url)
        devstack.load_service_data(db_url, days=2)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        os.environ.update(stack.endpoints.airflow_env())
        settings = load_settings()
        baseline: list[dict[str, Any]] = []
        evidences: list[dict[str, Any]] = []
        chosen = [case for case in args.cases.split(",") if case]
        if unknown := set(chosen) - set(CASES):
            parser.error(f"--cases: unknown {sorted(unknown)}; known: {list(CASES)}")
        phases = ["unchanged"] * args.unchanged + [p for case in chosen for p in (case, "unchanged")]
        for index, phase in enumerate(phases):
            inject, expected = CASES.get(phase, (None, None))
            clear_cache(redis_url)
            with contextlib.ExitStack() as stack_of:
                extra = stack_of.enter_context(inject(db_url)) if inject else {}
                port = devstack.free_port()
                service = devstack.start_reference_service(
                    database_url=db_url, redis_url=redis_url, port=port, log_dir=root,
                    extra_env={"TUTORMAX_SERVICE_FAST_PATH": "false", **extra},
                )  # fmt: skip
                stack_of.callback(service.stop)
                host = f"http://{devstack.LOOPBACK}:{port}"
                if phase == "delay outside the service":
                    host = stack_of.enter_context(delaying_proxy(port, PROXY_DELAY_MS))
                os.environ["AIRFLOW_CONN_TUTORMAX_API"] = json.dumps(http_connection(host))
                folder = root / f"run-{index}"
                folder.mkdir(parents=True, exist_ok=True)
                evidence, wall_s, cost_s = measure(settings, host, folder, args.run_time)
            suspects, note = explain.rank_suspects(evidence, baseline[-explain.BASELINE_RUNS :], [])
            top = suspects[0] if suspects else None
            row = {
                "phase": phase,
                "expected": expected,
                "judged": len(baseline) >= explain.MIN_BASELINE_RUNS,
                "top_kind": top.kind if top else None,
                "top": top.summary if top else (note or "no evidence found"),
                "suspects": [f"{s.kind} ({s.confidence}, {s.explains_ms or 0:.1f} ms)" for s in suspects],
                "wall_s": wall_s,
                "cost_s": cost_s,
                "bytes": evidence["bytes"],
                "requests": evidence["requests"],
            }
            rows.append(row)
            evidences.append({"phase": phase, "evidence": evidence})
            print(f"{index:2d} {phase:26s} {evidence['requests']:5d} requests, {wall_s:5.1f} s, "
                  f"evidence {evidence['bytes']} B in {1000 * cost_s:.0f} ms; top suspect: {row['top']}", flush=True)  # fmt: skip
            if len(suspects) > 1:
                print(f"   all: {'; '.join(row['suspects'])}", flush=True)
            if phase == "unchanged":
                baseline.append(evidence)
    shutil.rmtree(root, ignore_errors=True)
    kept = STATE_DIR / "bench" / "explain-evidence.json"
    kept.write_text(json.dumps(evidences, default=str, indent=1))
    print(f"each run's evidence: {kept}")
    cases = [row for row in rows if row["expected"]]
    correct = [row for row in cases if row["top_kind"] == row["expected"]]
    unchanged = [row for row in rows if row["phase"] == "unchanged" and row["judged"]]
    claiming = [row for row in unchanged if row["top_kind"] is not None]
    print("per case, the top suspect:")
    for row in cases:
        print(f"  {row['phase']}: {'ok' if row in correct else 'WRONG'}: {row['top']}")
    print(f"unchanged runs judged: {len(unchanged)}, claiming a suspect: {len(claiming)}")
    cost_pct = 100 * statistics.median(row["cost_s"] / row["wall_s"] for row in rows)
    print(f"evidence cost: median {cost_pct:.2f}% of a run's wall time (reference: the run itself); "
          f"bytes per run: max {max(row['bytes'] for row in rows)}")  # fmt: skip
    print(json.dumps({
        "explain_cases": len(cases),
        "explain_top1_correct": len(correct),
        "per_case_top": {row["phase"]: row["top_kind"] for row in cases},
        "unchanged_runs_judged": len(unchanged),
        "unchanged_runs_claiming": len(claiming),
        "evidence_cost_pct": round(cost_pct, 2),
        "evidence_bytes_max": max(row["bytes"] for row in rows),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
