"""The evidence's age: the youngest bound wins, and a changed identity starts again."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import psycopg

from tutormax_ops.collectors.postgres.indexes import StatsOrigin, stats_origin
from tutormax_ops.maintenance.evidence import evidence_age, first_observed, record_observation

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def origin(**changes: object) -> StatsOrigin:
    base = StatsOrigin("7301", 16384, "tutormax", None, NOW - 90 * DAY, NOW)
    return dataclasses.replace(base, **changes)


def test_the_youngest_bound_wins_and_says_so() -> None:
    watched = evidence_age(origin(), NOW - 30 * DAY, now=NOW)
    assert (watched.days, watched.decided_by) == (30, "first observed by this DAG")
    crashed = evidence_age(origin(server_stats_since=NOW - 2 * DAY), NOW - 30 * DAY, now=NOW)
    assert (crashed.days, crashed.decided_by) == (2, "server statistics restarted")
    reset = evidence_age(origin(stats_reset=NOW - DAY), NOW - 30 * DAY, now=NOW)
    assert (reset.days, reset.decided_by) == (1, "pg_stat_database.stats_reset")
    first = evidence_age(origin(), None, now=NOW)  # never seen before: the evidence starts with this run
    assert (first.days, first.decided_by) == (0, "first observed by this DAG")
    assert first.identity == "system 7301, database oid 16384 'tutormax'"


def test_a_recreated_database_is_a_new_identity(conn: psycopg.Connection) -> None:
    seen = stats_origin(conn)
    assert seen.database == conn.info.dbname and seen.system_identifier  # superuser reads pg_control_system
    record_observation(conn, "public", dataclasses.replace(seen, observed_at=NOW - 30 * DAY), dag_id="d")
    record_observation(conn, "public", seen, dag_id="d")  # a later run: the first observation is kept
    assert first_observed(conn, "public", seen, dag_id="d") == NOW - 30 * DAY
    recreated = dataclasses.replace(seen, database_oid=seen.database_oid + 1)
    assert first_observed(conn, "public", recreated, dag_id="d") is None
    assert first_observed(conn, "public", seen, dag_id="another_dag") is None
