"""The seed's Production Checklist, probed where a probe can decide: pass, fail or "cannot tell",
each with its evidence. Refreshed once per `health.checklist_interval_hours` (or on demand), one row
per item per day in `health_checklist`: a rerun the same day replaces that day's rows.

All 12 items are present. The caching environment is read from Redis; rate limiting is decided by
an opt-in burst; the rollback procedure stays "cannot tell" with what would decide it (a rehearsal on a
scratch copy), never by touching the live database (`checklist_probes`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tutormax_ops.core.db import load_sql
from tutormax_ops.core.storage import results_db
from tutormax_ops.health.checklist_probes import (
    DUMP_SUFFIXES,
    check_cache_environment,
    check_rate_limit,
    check_rollback,
    newest_dump,
)
from tutormax_ops.health.invalidation import check_invalidation
from tutormax_ops.health.probes import Verdict, alembic_status, guarded, with_database, with_redis
from tutormax_ops.health.results import SQL_FOLDER, one

if TYPE_CHECKING:
    from tutormax_ops.core.config import Settings

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", ""})
SHARED_BUFFERS_RANGE = (0.15, 0.40)  # the PostgreSQL docs' advice: about 25% of RAM on a dedicated server
PLACEHOLDER_DOMAIN = ".example"  # RFC 2606: the shipped default recipient, not a real address


def _statements(settings: Settings) -> Verdict:
    from tutormax_ops.collectors.postgres.queries import statements_snapshot

    def probe(conn: Any) -> Verdict:
        snapshot = statements_snapshot(conn)
        if snapshot.available:
            return Verdict(
                "pass", f"pg_stat_statements readable: {len(snapshot.statements)} statements tracked"
            )
        return Verdict("fail", f"{snapshot.reason}; fix: {snapshot.fix}")

    return with_database(settings, probe)


def _memory(settings: Settings) -> Verdict:
    def probe(conn: Any) -> Verdict:
        shared, work, connections = conn.execute(load_sql(f"{SQL_FOLDER}/pg_memory.sql")).fetchone()
        figures = f"shared_buffers {shared / 2**20:,.0f} MB, work_mem {work / 2**20:,.1f} MB, max_connections {connections}"
        host = conn.info.host or ""
        if host not in LOOPBACK_HOSTS and not host.startswith("/"):
            return Verdict("cannot tell", f"{figures}; the server's memory is not visible from here ({host})")
        import psutil

        ram = psutil.virtual_memory().total
        low, high = SHARED_BUFFERS_RANGE
        share = shared / ram
        worst_sorts = work * connections
        evidence = (
            f"{figures}; server memory {ram / 2**30:,.1f} GB: shared_buffers {100 * share:.1f}% "
            f"(advised {100 * low:.0f}–{100 * high:.0f}%), work_mem × max_connections "
            f"{worst_sorts / 2**30:,.2f} GB"
        )
        ok = low <= share <= high and worst_sorts <= ram
        return Verdict("pass" if ok else "fail", evidence)

    return with_database(settings, probe)


def _redis_persistence(settings: Settings) -> Verdict:
    def probe(client: Any) -> Verdict:
        from redis.exceptions import ResponseError

        try:
            save = client.config_get("save").get("save", "")
            aof = client.config_get("appendonly").get("appendonly", "no")
        except ResponseError as error:
            return Verdict("cannot tell", f"CONFIG GET refused ({error}): CONFIG may be renamed or disabled")
        evidence = f"RDB save {save!r}, AOF appendonly {aof!r}"
        return Verdict("pass" if save and aof == "yes" else "fail", evidence)

    return with_redis(probe)


def _baseline(settings: Settings) -> Verdict:
    with results_db(settings, read_only=True) as conn:
        found = one(conn, "baseline_loadtests", settings.storage.results_schema, {"profile": "baseline"})
    if found and found["runs"]:
        return Verdict(
            "pass", f"{found['runs']} valid baseline runs, newest {found['latest']:%Y-%m-%d %H:%M} UTC"
        )
    return Verdict("fail", "no valid run of the `baseline` profile in loadtest_runs")


def _recipients(settings: Settings) -> Verdict:
    recipients = settings.notify.recipients
    real = [address for address in recipients if not address.lower().endswith(PLACEHOLDER_DOMAIN)]
    if real:
        return Verdict("pass", f"notify.recipients: {len(real)} address(es), e.g. {real[0]}")
    return Verdict("fail", f"notify.recipients holds only placeholders: {list(recipients)}")


def _backup(settings: Settings) -> Verdict:
    folder, newest = newest_dump(settings)
    if newest is None:
        where = (
            "does not exist" if not folder.exists() else f"holds no dump file ({', '.join(DUMP_SUFFIXES)})"
        )
        return Verdict("fail", f"no backups: {folder} {where} (the migrations DAG writes its dumps there)")
    taken = datetime.fromtimestamp(newest.stat().st_mtime, UTC)
    age_h = (datetime.now(UTC) - taken).total_seconds() / 3600
    evidence = f"newest dump {newest.name} ({newest.stat().st_size:,} B) taken {age_h:,.1f} h ago"
    return Verdict("pass" if age_h <= settings.health.backup_max_age_hours else "fail", evidence)


def _data_volume(settings: Settings) -> Verdict:
    def probe(conn: Any) -> Verdict:
        total, tables, biggest = conn.execute(load_sql(f"{SQL_FOLDER}/data_volume.sql")).fetchone()
        evidence = f"{total:,} live rows in {tables} tables (largest: {biggest}); production-like means ≥ {settings.health.min_production_rows:,}"
        return Verdict("pass" if total >= settings.health.min_production_rows else "fail", evidence)

    return with_database(settings, probe)


# In the seed's order.
ITEMS: list[tuple[str, str, Callable[[Settings], Verdict]]] = [
    ("migrations", "Database migrations at head (alembic upgrade head)", alembic_status),
    ("pg_stat_statements", "pg_stat_statements enabled", _statements),
    ("pg_memory", "PostgreSQL memory settings (shared_buffers, work_mem)", _memory),
    ("redis_persistence", "Redis persistence (RDB + AOF)", _redis_persistence),
    (
        "cache_environment",
        "Caching configured (keys expire, memory limit and eviction)",
        check_cache_environment,
    ),
    ("baseline_loadtest", "Baseline load test run", _baseline),
    ("alert_recipients", "Monitoring alerts have recipients", _recipients),
    ("backup", "A recent backup", _backup),
    ("rollback_procedure", "Rollback procedure rehearsed", check_rollback),
    ("cache_invalidation", "Cache invalidation on data updates", check_invalidation),
    ("rate_limiting", "Rate limiting enabled", check_rate_limit),
    ("data_volume", "Tested with production-like data volume", _data_volume),
]


def check_all(settings: Settings) -> list[dict[str, Any]]:
    checked_at = datetime.now(UTC)
    found = []
    for position, (item, title, probe) in enumerate(ITEMS):
        verdict = guarded(lambda probe=probe: probe(settings))
        found.append(
            {
                "checked_on": checked_at.date(),
                "item": item,
                "position": position,
                "title": title,
                "status": verdict.status,
                "evidence": verdict.evidence,
                "checked_at": checked_at,
            }
        )
    return found


def refresh_checklist(settings: Settings, *, force: bool = False) -> dict[str, Any]:
    """Check every item unless the last check is younger than `health.checklist_interval_hours`."""
    from tutormax_ops.core.storage import upsert_rows

    schema = settings.storage.results_schema
    with results_db(settings) as conn:
        last = (one(conn, "checklist_last", schema) or {}).get("checked_at")
    fresh = last is not None and datetime.now(UTC) - last < timedelta(
        hours=settings.health.checklist_interval_hours
    )
    if fresh and not force:
        return {"refreshed": False, "checked_at": last.isoformat()}
    found = check_all(settings)
    with results_db(settings) as conn:
        upsert_rows(conn, schema, "health_checklist", found, key=("checked_on", "item"))
    counts = {
        status: sum(1 for row in found if row["status"] == status)
        for status in ("pass", "fail", "cannot tell")
    }
    return {"refreshed": True, "checked_at": found[0]["checked_at"].isoformat(), **counts}
