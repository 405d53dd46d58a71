"""The Production Checklist items that once were "left out rather than guessed": the caching
environment, rate limiting and the rollback procedure. Each is pass, fail or "cannot tell" with what
would decide it; the burst and the rollback rehearsal are opt-in, and neither touches the live
database.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from tutormax_ops.health.probes import Verdict, ttl_sample, with_redis

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from tutormax_ops.core.config import Settings

DUMP_SUFFIXES = (".dump", ".sql", ".sql.gz", ".backup", ".pgdump", ".tar")
REQUEST_TIMEOUT_S = 10


def newest_dump(settings: Settings) -> tuple[ObjectStoragePath, ObjectStoragePath | None]:
    """The backup folder (`health.backup_folder` in the artifacts store) and its newest dump, if any."""
    from airflow.sdk import ObjectStoragePath

    folder = ObjectStoragePath(settings.storage.artifacts_uri().rstrip("/")) / settings.health.backup_folder
    if not folder.exists():
        return folder, None
    dumps = [path for path in folder.rglob("*") if path.is_file() and path.name.endswith(DUMP_SUFFIXES)]
    return folder, max(dumps, key=lambda path: path.stat().st_mtime) if dumps else None


def check_cache_environment(settings: Settings) -> Verdict:
    """The cache the service configured, as Redis holds it: its keys under
    `collectors.redis_key_patterns` must expire (a TTL set), within a memory limit with an eviction
    policy. No key yet: cannot tell, until warming or traffic fills the cache."""
    patterns = settings.collectors.redis_key_patterns

    def probe(client: Any) -> Verdict:
        ttls = [ttl for sample in ttl_sample(client, patterns).values() for ttl in sample]
        memory = client.info("memory")
        limit = int(memory.get("maxmemory", 0))
        policy = memory.get("maxmemory_policy")
        limits = f"maxmemory {'unlimited' if not limit else f'{limit:,} B'}, policy {policy}"
        if not ttls:
            return Verdict(
                "cannot tell",
                f"no key matches {list(patterns)} in the first SCAN page ({limits}): run "
                "tutormax_cache_warming or let traffic fill the cache, then the keys' TTLs decide",
            )
        never = sum(1 for ttl in ttls if ttl < 0)
        live = sorted(ttl for ttl in ttls if ttl >= 0)
        spread = f"TTL {live[0]}–{live[-1]} s" if live else "no TTL"
        evidence = f"{len(ttls)} keys sampled: {spread}, {never} never expire; {limits}"
        if never:
            return Verdict("fail", f"{evidence}: set the service's cache TTL")
        if limit and policy == "noeviction":
            return Verdict("fail", f"{evidence}: a full cache refuses writes; choose an allkeys-* policy")
        return Verdict("pass", evidence)

    return with_redis(probe)


def check_rate_limit(settings: Settings) -> Verdict:
    """A burst of GETs to `health.rate_limit_probe.path`, one after another: a 429 within
    `max_requests` passes; none fails. Off unless enabled: it sends load to the service."""
    from tutormax_ops.core.service import allowed_base_url, api_session

    probe = settings.health.rate_limit_probe
    if not probe.enabled:
        return Verdict(
            "cannot tell",
            f"the burst sends up to {probe.max_requests} requests to the service, so it is off: enable "
            f"health.rate_limit_probe (GET {probe.path} must meet a 429 within max_requests)",
        )
    base = allowed_base_url(settings, "rate-limit probe")  # before any request
    answers: Counter[int] = Counter()
    started = time.monotonic()
    with api_session() as session:
        for sent in range(1, probe.max_requests + 1):
            response = session.get(f"{base}{probe.path}", timeout=REQUEST_TIMEOUT_S)
            answers[response.status_code] += 1
            if response.status_code == 429:
                retry = response.headers.get("Retry-After")
                return Verdict(
                    "pass",
                    f"GET {probe.path}: 429 at request {sent} of at most {probe.max_requests} "
                    f"({time.monotonic() - started:.1f} s){f', Retry-After {retry}' if retry else ''}",
                )
    seen = ", ".join(f"{status} × {count}" for status, count in sorted(answers.items()))
    return Verdict(
        "fail",
        f"GET {probe.path}: no 429 in {probe.max_requests} requests in {time.monotonic() - started:.1f} s "
        f"(answers: {seen})",
    )


def check_rollback(settings: Settings) -> Verdict:
    """Rehearsed on a scratch copy when `health.rollback_rehearsal` is enabled and a backup exists;
    otherwise "cannot tell", with what would decide it and the backup it would start from."""
    from tutormax_ops.health.rollback import rehearse_rollback

    folder, dump = newest_dump(settings)
    if dump is not None and settings.health.rollback_rehearsal.enabled:
        return rehearse_rollback(settings, dump)
    start = (
        f"the newest dump, {dump.name},"
        if dump
        else f"a dump (none under {folder} yet: run tutormax_migrations)"
    )
    return Verdict(
        "cannot tell",
        f"no rollback rehearsal ran. It is decided by restoring {start} into a scratch database, "
        "then `alembic downgrade -1` and `alembic upgrade head` there, timed, never on the live database: "
        "enable health.rollback_rehearsal",
    )
