"""Live probes the runbooks and the checklist share. Each returns plain text evidence (or a
`Verdict`) and never raises: a probe that cannot reach its server says so, credentials redacted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tutormax_ops.core.conn_ids import DB_CONN_ID, REDIS_CONN_ID
from tutormax_ops.core.notify import redact

if TYPE_CHECKING:
    from redis import Redis

    from tutormax_ops.core.config import Settings

Status = Literal["pass", "fail", "cannot tell"]
TTL_SAMPLE = 10


@dataclass(frozen=True)
class Verdict:
    status: Status
    evidence: str


def guarded(probe: Callable[[], Verdict]) -> Verdict:
    """Run a probe; an exception is a "cannot tell" with the error as evidence."""
    try:
        return probe()
    except Exception as error:  # every probe failure is evidence, never a crash of the step
        return Verdict("cannot tell", redact(f"{type(error).__name__}: {error}")[:500])


def with_redis(use: Callable[[Redis], Verdict]) -> Verdict:
    from airflow.providers.redis.hooks.redis import RedisHook

    def probe() -> Verdict:
        client = RedisHook(redis_conn_id=REDIS_CONN_ID).get_conn()
        try:
            return use(client)
        finally:
            client.close()

    return guarded(probe)


def with_database(settings: Settings, use: Callable[[Any], Verdict]) -> Verdict:
    from tutormax_ops.core.db import collector_session

    def probe() -> Verdict:
        with collector_session(DB_CONN_ID, settings) as conn:
            return use(conn)

    return guarded(probe)


def alembic_status(settings: Settings) -> Verdict:
    """`alembic current` (the version table) against `alembic heads`, run for `migrations.project`
    exactly as the migrations DAG runs it."""

    def compare(conn: Any) -> Verdict:
        from tutormax_ops.migrations.plan import current_revisions, parse_heads
        from tutormax_ops.migrations.runner import newest_change, project_command

        alembic = project_command(settings)
        heads = parse_heads(alembic.run(["heads"]).stdout)
        current = current_revisions(conn, settings)
        change = (
            f"; newest migration {heads[0]}: {newest_change(alembic, heads[0])}" if len(heads) == 1 else ""
        )
        evidence = f"database at {sorted(current) or 'no revision'}, project head {sorted(heads)}{change}"
        return Verdict("pass" if set(current) == set(heads) else "fail", evidence)

    return with_database(settings, compare)


def ttl_sample(client: Redis, patterns: tuple[str, ...]) -> dict[str, list[int]]:
    """The TTLs (-1: no expiry) of up to TTL_SAMPLE keys per pattern (one SCAN call each, never KEYS)."""
    sample = {}
    for pattern in patterns:
        _, keys = client.scan(cursor=0, match=pattern, count=1000)
        sample[pattern] = [client.ttl(key) for key in keys[:TTL_SAMPLE]]
    return sample


def sampled_ttls(client: Redis, patterns: tuple[str, ...]) -> str:
    """The TTLs of up to TTL_SAMPLE keys per pattern, as one line."""
    parts = []
    for pattern, ttls in ttl_sample(client, patterns).items():
        if not ttls:
            parts.append(f"{pattern}: no key in the first SCAN page")
            continue
        no_expiry = sum(1 for ttl in ttls if ttl < 0)
        live = sorted(ttl for ttl in ttls if ttl >= 0)
        spread = f"TTL {live[0]}–{live[-1]} s" if live else "no TTL"
        parts.append(f"{pattern}: {len(ttls)} sampled, {spread}, {no_expiry} without expiry")
    return "; ".join(parts)
