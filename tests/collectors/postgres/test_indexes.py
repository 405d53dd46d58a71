"""indexes: a planted unused index, a planted duplicate and an invalid index are each found, and
nothing else is flagged; the redundancy rules; usage per table; a pg_monitor-only role."""

from __future__ import annotations

import psycopg
import pytest

from tutormax_ops.collectors.postgres.indexes import (
    duplicate_indexes,
    index_usage,
    invalid_indexes,
    unused_indexes,
)

SETUP = (
    "CREATE TABLE sessions (id int PRIMARY KEY, tutor_id int, code text, started_at timestamptz)",
    """
    INSERT INTO sessions
    SELECT g, g % 50, 'code-' || (g % 1000), now() - g * interval '1 minute'
    FROM generate_series(1, 2000) AS g
    """,
    # The planted duplicate, scanned before the index that makes it redundant exists, so that it is
    # not also "unused" (which it would rightly be, later).
    "CREATE INDEX sessions_tutor_idx ON sessions (tutor_id)",
    "SET enable_seqscan = off",
    "SELECT count(*) FROM sessions WHERE tutor_id = 7",
    "RESET enable_seqscan",
    # Unique, so never "unused" either; its leading column makes sessions_tutor_idx redundant.
    "CREATE UNIQUE INDEX sessions_tutor_code_key ON sessions (tutor_id, code, id)",
    # The planted unused index.
    "CREATE INDEX sessions_started_idx ON sessions (started_at)",
    # Rules and replication keep these even though nothing scans them.
    """
    CREATE TABLE bookings (id int NOT NULL, room int, during tstzrange,
                           EXCLUDE USING gist (during WITH &&))
    """,
    "CREATE UNIQUE INDEX bookings_id_key ON bookings (id)",
    "ALTER TABLE bookings REPLICA IDENTITY USING INDEX bookings_id_key",
    # Indexes for the redundancy rules, in their own schema.
    "CREATE SCHEMA rules",
    "CREATE TABLE rules.t (a int, b int, c text)",
    "CREATE INDEX same_1 ON rules.t (a, b)",
    "CREATE INDEX same_2 ON rules.t (a, b)",  # exact duplicate: the newer one is reported
    "CREATE INDEX desc_a ON rules.t (a DESC)",  # other sort order: not a prefix of (a, b)
    "CREATE INDEX partial_a ON rules.t (a) WHERE b > 0",  # other predicate
    "CREATE INDEX lower_c ON rules.t (lower(c))",
    "CREATE INDEX lower_c_a ON rules.t (lower(c), a)",  # same expression, longer: lower_c is redundant
    "CREATE INDEX hash_a ON rules.t USING hash (a)",  # other access method
    "CREATE INDEX a_incl_c ON rules.t (a) INCLUDE (c)",  # holds c, which (a, b) does not
)


@pytest.fixture(scope="module")
def database(database_with) -> str:
    url = database_with("indexes", SETUP)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("INSERT INTO sessions VALUES (2001, 1, 'code-1', now())")
        # Fails on the duplicated code and leaves an INVALID index behind.
        with pytest.raises(psycopg.errors.UniqueViolation):
            admin.execute("CREATE UNIQUE INDEX CONCURRENTLY sessions_code_key ON sessions (code)")
    return url


def names(rows) -> set[str]:
    return {row.index for row in rows}


@pytest.fixture(params=["owner", "pg_monitor"])
def conn(request, connect, database, monitor_role) -> psycopg.Connection:
    """Every finding must come out the same for the owner and for a pg_monitor-only role."""
    return connect(database, role=monitor_role if request.param == "pg_monitor" else None)


def test_planted_unused_index_and_nothing_else(conn) -> None:
    [unused] = unused_indexes(conn, schemas=["public"])
    assert unused.index == "sessions_started_idx"
    assert unused.scans == 0 and unused.size_bytes > 0
    assert unused.definition.startswith("CREATE INDEX sessions_started_idx")
    # How old the counters are: never reset in a fresh database, else a time and its age.
    assert (unused.stats_reset is None) == (unused.stats_age_s is None)


def test_planted_duplicate_and_nothing_else(conn) -> None:
    [duplicate] = duplicate_indexes(conn, schemas=["public"])
    assert (duplicate.index, duplicate.covering_index) == ("sessions_tutor_idx", "sessions_tutor_code_key")
    assert duplicate.same_keys is False and duplicate.owning_constraint is None


def test_invalid_index_and_nothing_else(conn) -> None:
    [invalid] = invalid_indexes(conn)
    assert (invalid.table, invalid.index) == ("sessions", "sessions_code_key")
    assert invalid.build_in_progress is False
    assert invalid.definition == "CREATE UNIQUE INDEX sessions_code_key ON public.sessions USING btree (code)"


def test_redundancy_rules(conn) -> None:
    found = {(row.index, row.covering_index) for row in duplicate_indexes(conn, schemas=["rules"])}
    assert found == {("same_2", "same_1"), ("lower_c", "lower_c_a")}


def test_usage_per_table(conn) -> None:
    usage = {row.index: row for row in index_usage(conn, table="sessions")}
    assert set(usage) == {
        "sessions_pkey",
        "sessions_tutor_idx",
        "sessions_tutor_code_key",
        "sessions_started_idx",
        "sessions_code_key",
    }
    assert usage["sessions_tutor_idx"].scans >= 1
    assert usage["sessions_pkey"].is_primary and usage["sessions_tutor_code_key"].is_unique
    assert not usage["sessions_code_key"].is_valid


def test_locked_table_does_not_block(connect, database) -> None:
    """pg_get_indexdef and sizes wait behind an ACCESS EXCLUSIVE lock: such indexes are marked instead."""
    conn = connect(database)
    with psycopg.connect(database) as holder:
        holder.execute("LOCK TABLE rules.t IN ACCESS EXCLUSIVE MODE")
        locked = index_usage(conn, schemas=["rules"])
        duplicates = duplicate_indexes(conn, schemas=["rules"])
        holder.rollback()
    assert locked and all(row.locked and row.definition is None for row in locked)
    assert duplicates == []
