"""The task bodies of `tutormax_cache_clear` and `tutormax_cache_warming`: each DAG task calls one
function here. Redis through the `tutormax_redis` connection, the service through `tutormax_api`,
ids through `tutormax_db`, history through `tutormax_results`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from tutormax_ops.cache.keys import clear, validate_pattern
from tutormax_ops.cache.warm import Pacing, Request, TargetResult, run_requests
from tutormax_ops.collectors.redis import cache_stats
from tutormax_ops.core.config import Settings, WarmTarget, load_settings
from tutormax_ops.core.conn_ids import DB_CONN_ID, REDIS_CONN_ID, RESULTS_CONN_ID
from tutormax_ops.core.db import collector_session, load_sql
from tutormax_ops.core.errors import ReportedFailure, fail_fast
from tutormax_ops.core.notify import send_email
from tutormax_ops.core.registry import RunRecord, record_of, record_run, store_run
from tutormax_ops.core.reports import render
from tutormax_ops.core.runs import run_type_of, trigger_of
from tutormax_ops.core.service import allowed_base_url, auth_headers
from tutormax_ops.core.storage import ensure_results_schema, replace_run_rows, upsert_rows

log = logging.getLogger(__name__)
WARM_DAG_ID = "tutormax_cache_warming"


@contextlib.contextmanager
def _redis() -> Iterator[Any]:
    from airflow.providers.redis.hooks.redis import RedisHook

    client = RedisHook(redis_conn_id=REDIS_CONN_ID).get_conn()
    try:
        yield client
    finally:
        client.close()


# --- tutormax_cache_clear ---------------------------------------------------------------------


@fail_fast
def clear_step(params: Mapping[str, Any], dag_run: Any) -> dict[str, Any]:
    """Validate the pattern (before Redis is touched), then SCAN + UNLINK, or only count on a dry run;
    the run goes into the run registry."""
    settings = load_settings(with_variable=True)
    pattern = validate_pattern(str(params.get("pattern") or ""), settings.cache_clear.key_prefix)
    with _redis() as client:
        result = clear(
            client,
            pattern,
            dry_run=bool(params.get("dry_run", True)),
            scan_count=settings.cache_clear.scan_count,
            unlink_batch=settings.cache_clear.unlink_batch,
        )
    verb = "would remove (dry run)" if result.dry_run else "removed"
    count = result.matched if result.dry_run else result.removed
    log.info(
        "%s %d keys matching %r in %.2f s (%d SCAN calls)",
        verb,
        count,
        pattern,
        result.seconds,
        result.scan_calls,
    )
    line = f"{verb} {count:,} keys matching {pattern!r} in {result.seconds:.2f} s"
    store_run(
        settings,
        record_of(dag_run, kind="cache_clear", status="success", headline=line, details=asdict(result)),
    )
    return asdict(result)


# --- tutormax_cache_warming -------------------------------------------------------------------


def _stat_patterns(settings: Settings) -> list[str]:
    return list(
        dict.fromkeys([*settings.collectors.redis_key_patterns, *settings.cache_warm.invalidate_patterns])
    )


def snapshot(settings: Settings | None = None) -> dict[str, Any]:
    """Hit rate (INFO counters since start) and SCAN-bounded key counts per pattern."""
    settings = settings or load_settings(with_variable=True)
    with _redis() as client:
        stats = cache_stats(
            client, patterns=_stat_patterns(settings), scan_limit=settings.collectors.redis_scan_limit
        )
    if not stats.connected:
        raise ConnectionError(f"tutormax_redis: {stats.error}")
    return {
        "hit_rate_percent": stats.hit_rate_percent,
        "hits": stats.hits,
        "misses": stats.misses,
        "keys": {k.pattern: k.keys for k in stats.key_counts},
        "keys_truncated": [k.pattern for k in stats.key_counts if k.truncated],
    }


@fail_fast
def snapshot_step(dag_run: Any) -> dict[str, Any]:
    """A scheduled run that starts after its window (`cache_warm.window_minutes` from its scheduled
    time: the catch-up run of an unpaused DAG, a scheduler that was down) skips the whole run: no
    request, no Asset event, no load test. Otherwise the snapshot before warming."""
    from airflow.sdk.exceptions import AirflowSkipException

    from tutormax_ops.core.windows import run_window

    settings = load_settings(with_variable=True)
    window = run_window(
        run_type=run_type_of(dag_run.run_type),
        run_after=dag_run.run_after,
        started_at=dag_run.start_date,
        minutes=settings.cache_warm.window_minutes,
    )
    late = window.late_reason()
    if late:
        raise AirflowSkipException(f"{late}; nothing was warmed, no tutormax_cache_warmed event")
    return snapshot(settings)


def load_test_follows(params: Mapping[str, Any], run_type: Any) -> bool:
    """Whether this run's `tutormax_cache_warmed` event is a planned one, which the smoke load test
    acts on: the `load_test` param, or by default only a scheduled run (in its window: a late one
    never gets here) or a migration's (Asset-triggered) run; a manual warm run does not send load."""
    chosen = params.get("load_test")
    return trigger_of(run_type) in ("schedule", "asset") if chosen is None else bool(chosen)


def should_invalidate(params: Mapping[str, Any], run_type: Any) -> bool:
    """`invalidate` param, or by default only when a migration's Asset event triggered the run.
    `run_type` is the DAG run's (either enum, or its value)."""
    chosen = params.get("invalidate")
    return trigger_of(run_type) == "asset" if chosen is None else bool(chosen)


@fail_fast
def invalidate_step(params: Mapping[str, Any], run_type: Any) -> dict[str, int]:
    settings = load_settings(with_variable=True)
    if not should_invalidate(params, run_type):
        log.info(
            "no invalidation: run type %s, invalidate=%s", run_type_of(run_type), params.get("invalidate")
        )
        return {}
    removed = {}
    with _redis() as client:
        for pattern in settings.cache_warm.invalidate_patterns:
            validate_pattern(pattern, settings.cache_clear.key_prefix)
            result = clear(
                client,
                pattern,
                dry_run=False,
                scan_count=settings.cache_clear.scan_count,
                unlink_batch=settings.cache_clear.unlink_batch,
            )
            removed[pattern] = result.removed
            log.info("invalidated %d keys matching %r", result.removed, pattern)
    return removed


def _ids(target: WarmTarget, settings: Settings) -> list[Any]:
    with collector_session(DB_CONN_ID, settings) as conn:
        return [row[0] for row in conn.execute(load_sql(target.sql_file), target.sql_params).fetchall()]


def build_requests(target: WarmTarget, base: str, settings: Settings) -> list[Request]:
    if target.kind == "warm_endpoint":
        return [Request("POST", base + target.path, dict(target.query))]
    return [
        Request("GET", base + target.url_template.replace("{id}", str(i))) for i in _ids(target, settings)
    ]


def pacing(settings: Settings) -> Pacing:
    warm = settings.cache_warm
    return Pacing(warm.concurrency, warm.rate_per_s, warm.retries, warm.backoff_s, warm.request_timeout_s)


@fail_fast
def warm_step(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    settings = load_settings(with_variable=True)
    wanted = list(params.get("targets") or [])
    targets = [t for t in settings.cache_warm.targets if not wanted or t.name in wanted]
    unknown = sorted(set(wanted) - {t.name for t in settings.cache_warm.targets})
    if unknown:
        raise ValueError(f"params.targets: {unknown} are not in cache_warm.targets")
    base = allowed_base_url(settings, "warm")  # before any request
    results: list[TargetResult] = []
    for target in targets:
        result = asyncio.run(
            run_requests(
                target.name, build_requests(target, base, settings), pacing(settings), headers=auth_headers()
            )
        )
        log.info(
            "%s: %d requested, %d ok, %d failed, p95 %s ms in %.1f s",
            result.target,
            result.requested,
            result.ok,
            result.failed,
            result.p95_ms,
            result.seconds,
        )
        for error in result.errors:
            log.warning("%s: %s", result.target, error)
        results.append(result)
    return [asdict(result) for result in results]


@fail_fast
def record_step(
    before: Mapping[str, Any],
    invalidated: Mapping[str, int],
    warmed: Sequence[Mapping[str, Any]],
    *,
    run_id: str,
    run_type: Any,
    started_at: datetime,
    params: Mapping[str, Any],
    outlet_event: Any,
) -> dict[str, Any]:
    """Take the after-snapshot, store the history rows, then email when the hit rate is below the alert
    level or a target failed; a target with no successful request fails the task (no Asset event).
    The event's metadata says whether the smoke load test should follow (`planned`)."""
    settings = load_settings(with_variable=True)
    after = snapshot(settings)
    level = settings.alerts.cache_hit_rate_percent
    rate = before.get("hit_rate_percent")
    alerts = []
    if rate is not None and rate < level:
        alerts.append(f"hit rate {rate:.1f}% is below the alert level {level:g}%")
    alerts += [
        f"{w['target']}: {w['failed']} of {w['requested']} requests failed" for w in warmed if w["failed"]
    ]
    dead = [w["target"] for w in warmed if w["requested"] and not w["ok"]]
    with collector_session(RESULTS_CONN_ID, settings, read_only=False) as conn, conn.transaction():
        schema = settings.storage.results_schema
        ensure_results_schema(conn, schema)
        record_run(
            conn, schema, _registry_record(after, alerts, dead, run_id, run_type_of(run_type), started_at)
        )
        upsert_rows(
            conn,
            schema,
            "cache_warm_runs",
            [_run_row(before, after, invalidated, alerts, run_id, run_type_of(run_type), started_at)],
            key=("dag_id", "run_id"),
        )
        replace_run_rows(
            conn,
            schema,
            "cache_warm_targets",
            [_target_row(w, run_id) for w in warmed],
            dag_id=WARM_DAG_ID,
            run_id=run_id,
            key=("dag_id", "run_id", "target"),
        )
    summary = {
        "before": dict(before),
        "after": after,
        "invalidated": dict(invalidated),
        "targets": list(warmed),
        "alerts": alerts,
    }
    if alerts:
        send_email(
            subject=f"cache warming: {alerts[0]} ({run_id})",
            html=render("cache_warm_email.html", run_id=run_id, **summary),
        )
    if dead:
        # Emailed above (a failed request is an alert); a retry of `record` would not warm anything.
        raise ReportedFailure(
            f"no request of {dead} succeeded (see the warm task's log); results were stored"
        )
    planned = load_test_follows(params, run_type)
    outlet_event.extra = {"planned": planned, "trigger": trigger_of(run_type), "run_id": run_id}
    log.info(
        "tutormax_cache_warmed: planned=%s (the smoke load test %s)",
        planned,
        "follows" if planned else "sends no load",
    )
    return summary


def _run_row(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    invalidated: Mapping[str, int],
    alerts: list[str],
    run_id: str,
    run_type: str,
    started_at: datetime,
) -> dict[str, Any]:
    return {
        "dag_id": WARM_DAG_ID,
        "run_id": run_id,
        "started_at": started_at,
        "triggered_by": run_type,
        "invalidated": sum(invalidated.values()) if invalidated else None,
        "hit_rate_before": before.get("hit_rate_percent"),
        "hit_rate_after": after.get("hit_rate_percent"),
        "keys_before": Jsonb(before.get("keys", {})),
        "keys_after": Jsonb(after.get("keys", {})),
        "alert": "; ".join(alerts) or None,
    }


def _registry_record(
    after: Mapping[str, Any],
    alerts: list[str],
    dead: list[str],
    run_id: str,
    run_type: str,
    started_at: datetime,
) -> RunRecord:
    rate = after.get("hit_rate_percent")
    headline = "; ".join(
        [f"cache warmed, hit rate {'unknown' if rate is None else f'{rate:.1f}%'} after", *alerts]
    )
    return RunRecord(
        dag_id=WARM_DAG_ID,
        run_id=run_id,
        kind="cache_warm",
        run_type=run_type,
        started_at=started_at,
        status="failed" if dead else "warning" if alerts else "success",
        headline=headline,
        details={"alerts": alerts, "dead_targets": dead},
    )


def _target_row(warmed: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    return {
        "dag_id": WARM_DAG_ID,
        "run_id": run_id,
        **{k: warmed[k] for k in ("target", "requested", "ok", "failed", "p95_ms", "seconds")},
    }
