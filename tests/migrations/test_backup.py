"""Choosing pg_dump: at least as new as the server, or a clear error before anything is applied."""

from __future__ import annotations

import shutil

import pytest

from tutormax_ops.migrations.backup import BackupError, choose_pg_dump, pg_dump_version


def test_the_chosen_pg_dump_is_at_least_the_server_version(pg_admin_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_admin_url) as conn:
        server = int(conn.execute("SHOW server_version_num").fetchone()[0])
    chosen = choose_pg_dump(server)
    assert chosen.major >= server // 10000
    assert pg_dump_version(chosen.path) == chosen


def test_a_pg_dump_older_than_the_server_is_a_clear_error() -> None:
    path = shutil.which("pg_dump") or choose_pg_dump(0).path
    version = pg_dump_version(path)
    with pytest.raises(
        BackupError, match=rf"PostgreSQL {version.major + 1}\).*migrations.pg_dump_path.*Nothing was applied"
    ):
        choose_pg_dump((version.major + 1) * 10000, path)
