"""collect_all: one full pass fills every section, for the owner and for a pg_monitor-only role."""

from __future__ import annotations

import pytest

from tutormax_ops.collectors.postgres import collect_all
from tutormax_ops.collectors.postgres.indexes import unused_indexes

SETUP = (
    "CREATE TABLE tutors (id int PRIMARY KEY, name text, rating numeric)",
    "INSERT INTO tutors SELECT g, 'tutor ' || g, g % 5 FROM generate_series(1, 500) AS g",
    "CREATE INDEX tutors_rating_idx ON tutors (rating)",
    "ANALYZE tutors",
)


@pytest.fixture(scope="module")
def database(database_with) -> str:
    return database_with("collect_all", SETUP)


@pytest.mark.parametrize("as_monitor", [False, True])
def test_full_pass(connect, database, monitor_role, as_monitor) -> None:
    conn = connect(database, role=monitor_role if as_monitor else None)
    snapshot = collect_all(conn)
    assert snapshot.database == conn.info.dbname and snapshot.server_version >= 150000
    assert [row.table for row in snapshot.tables] == ["tutors"]
    assert [row.table for row in snapshot.table_bloat] == ["tutors"]
    assert snapshot.table_bloat[0].estimable is not as_monitor
    assert {row.index for row in snapshot.index_usage} == {"tutors_pkey", "tutors_rating_idx"}
    # Derived from the usage rows: the same answer as asking on its own.
    assert list(snapshot.unused_indexes) == unused_indexes(conn)
    assert [row.index for row in snapshot.unused_indexes] == ["tutors_rating_idx"]
    assert snapshot.duplicate_indexes == () and snapshot.invalid_indexes == ()
    assert snapshot.health.connections.connections >= 1 and snapshot.health.databases
