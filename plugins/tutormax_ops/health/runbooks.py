"""Each alert's runbook: the seed's Troubleshooting steps for its symptom, each with live evidence.

A runbook is a list of `{"step": …, "evidence": …}`. Evidence is gathered when the alert is raised or
held, so the email and the Performance page show what the servers say now, not generic advice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tutormax_ops.core.storage import results_db
from tutormax_ops.health.probes import Verdict, alembic_status, with_database, with_redis
from tutormax_ops.health.results import rows

if TYPE_CHECKING:
    from tutormax_ops.core.config import Settings
    from tutormax_ops.core.registry import Kind

Step = dict[str, str]
SLOW_QUERY_LIMIT = 5


def runbook(alert: str, settings: Settings, snapshot: dict[str, Any]) -> list[Step]:
    """The runbook of `alert` (an `alerts.rules` name), filled in from the live servers."""
    return RUNBOOKS[alert](settings, snapshot)


def _step(step: str, verdict: Verdict | str) -> Step:
    return {"step": step, "evidence": verdict if isinstance(verdict, str) else verdict.evidence}


def _cache(settings: Settings, snapshot: dict[str, Any]) -> list[Step]:
    from tutormax_ops.health.probes import sampled_ttls

    patterns = settings.collectors.redis_key_patterns

    def connected(client: Any) -> Verdict:
        info = client.info("server")
        return Verdict("pass", f"PING {client.ping()}, Redis {info.get('redis_version')}")

    def ttls(client: Any) -> Verdict:
        return Verdict("pass", sampled_ttls(client, patterns))

    def evictions(client: Any) -> Verdict:
        info = client.info()
        limit = int(info.get("maxmemory", 0))
        used = int(info["used_memory"])
        share = f"{100 * used / limit:.0f}% of maxmemory {limit:,} B" if limit else "maxmemory unlimited"
        return Verdict(
            "pass",
            f"evicted_keys {info['evicted_keys']:,} since start; used_memory {used:,} B ({share}); "
            f"policy {info.get('maxmemory_policy')}",
        )

    return [
        _step("Check the Redis connection (GET /health, PING)", with_redis(connected)),
        _step("Review cache TTLs (they may be too short)", with_redis(ttls)),
        _step("Evictions against maxmemory (raise the Redis memory limit)", with_redis(evictions)),
        _step("Warm the cache for popular data: the last warming run", _last_run(settings, "cache_warm")),
        _step("Where the figure comes from", str(snapshot["sources"].get("cache_hit_rate"))),
    ]


def _slow_api(settings: Settings, snapshot: dict[str, Any]) -> list[Step]:
    return [
        _step("Where the figure comes from", str(snapshot["sources"].get("api_p95_ms"))),
        _step("Check the slow queries", _slow_queries(settings)),
        _step("Verify the indexes are applied: alembic current against head", alembic_status(settings)),
        _step("Review recent schema changes: the last migrations run", _last_run(settings, "migration")),
    ]


def _slow_query_rate(settings: Settings, snapshot: dict[str, Any]) -> list[Step]:
    return [
        _step("Where the figure comes from", str(snapshot["sources"].get("slow_query_rate"))),
        _step("Check the slow queries", _slow_queries(settings)),
        _step("Verify the indexes are applied: alembic current against head", alembic_status(settings)),
        _step(
            "Check for missing indexes",
            "GET /tutormax-ops/api/performance/database/table/{table}/index-suggestions for the tables above",
        ),
    ]


def _errors(settings: Settings, snapshot: dict[str, Any]) -> list[Step]:
    loadtest = snapshot["sources"].get("loadtest") or {}
    failing = "no load test in the window"
    if loadtest:
        with results_db(settings, read_only=True) as conn:
            found = rows(
                conn,
                "loadtest_failures",
                settings.storage.results_schema,
                {"dag_id": loadtest["dag_id"], "run_id": loadtest["run_id"]},
            )
        failing = (
            "; ".join(
                f"{row['endpoint']}: {row['failures']:,} of {row['requests']:,} failed" for row in found
            )
            or "no endpoint failed"
        )
    return [
        _step("Where the figure comes from", str(snapshot["sources"].get("error_rate"))),
        _step("The failing endpoints of that run", failing),
        _step("Read the load test's failures file and the API logs", loadtest.get("artifacts_uri") or "—"),
    ]


def _connections(settings: Settings, snapshot: dict[str, Any]) -> list[Step]:
    from tutormax_ops.collectors.postgres.health import connection_usage, xmin_holders

    def usage(conn: Any) -> Verdict:
        found = connection_usage(conn)
        return Verdict(
            "pass",
            f"{found.connections} connections: {found.active} active, {found.idle} idle, "
            f"{found.idle_in_transaction} idle in transaction, {found.waiting_on_locks} waiting on locks",
        )

    def holders(conn: Any) -> Verdict:
        found = xmin_holders(conn, min_duration_s=60)
        listed = "; ".join(f"{h.kind} {h.pid or h.name}: {h.duration_s or 0:,.0f} s" for h in found[:5])
        return Verdict("pass", listed or "no transaction open for more than 60 s")

    return [
        _step("Where the figure comes from", str(snapshot["sources"].get("connections_pct"))),
        _step("Connection pool exhausted? Who holds the connections", with_database(settings, usage)),
        _step("Long transactions", with_database(settings, holders)),
        _step("Verify the indexes are applied: alembic upgrade head", alembic_status(settings)),
    ]


def _queue(settings: Settings, snapshot: dict[str, Any]) -> list[Step]:
    return [_step("Where the figure comes from", str(snapshot["sources"].get("queue_depth")))]


def _slow_queries(settings: Settings) -> str:
    """The slowest statements by mean time since pg_stat_statements' counters started."""
    from tutormax_ops.collectors.postgres.queries import slow_queries, statements_snapshot

    def slowest(conn: Any) -> Verdict:
        snapshot = statements_snapshot(conn)
        if not snapshot.available:
            return Verdict("cannot tell", f"pg_stat_statements unavailable: {snapshot.reason}")
        found = slow_queries(
            None, snapshot, min_duration_ms=settings.alerts.slow_query_ms, limit=SLOW_QUERY_LIMIT
        )
        listed = "; ".join(f"{d.mean_ms:,.1f} ms × {d.calls:,}: {d.query[:120]}" for d in found)
        return Verdict(
            "pass", listed or f"no statement averages {settings.alerts.slow_query_ms:g} ms or more"
        )

    return with_database(settings, slowest).evidence


def _last_run(settings: Settings, kind: Kind) -> str:
    """The newest run of `kind` in the run registry, the one place every DAG records its runs."""
    from tutormax_ops.core.registry import describe_last_run, last_run

    with results_db(settings, read_only=True) as conn:
        return describe_last_run(last_run(conn, settings.storage.results_schema, kind), kind)


RUNBOOKS: dict[str, Callable[[Settings, dict[str, Any]], list[Step]]] = {
    "cache_hit_rate": _cache,
    "api_p95_ms": _slow_api,
    "slow_query_rate": _slow_query_rate,
    "error_rate": _errors,
    "connections_pct": _connections,
    "queue_depth": _queue,
}
