"""The migration-failure email's restore command runs as printed: a real dump restored with it."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import psycopg

from tutormax_ops.devstack.postgres import postgres_bin_dir
from tutormax_ops.migrations.backup import restore_command
from tutormax_ops.migrations.runner import DbTarget


def test_the_restore_command_restores_a_dump_as_printed(fresh_database, tmp_path: Path) -> None:
    source = fresh_database("restore_source")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO kept VALUES (1, 'before the migration')")
    dump = tmp_path / "backup dir" / "pre-upgrade.dump"
    dump.parent.mkdir()
    parts = psycopg.conninfo.conninfo_to_dict(source)
    pg = {
        "PGHOST": parts["host"],
        "PGPORT": str(parts["port"]),
        "PGUSER": parts["user"],
        "PGPASSWORD": parts["password"],
    }
    bin_dir = postgres_bin_dir()
    subprocess.run(
        [bin_dir / "pg_dump", "-Fc", "-f", dump, "-d", parts["dbname"]], env={**os.environ, **pg}, check=True
    )
    target_url = fresh_database("restore_target")
    target = psycopg.conninfo.conninfo_to_dict(target_url)
    command = restore_command(
        dump.as_uri(), DbTarget(target["host"], int(target["port"]), target["user"], target["dbname"])
    )
    assert "file://" not in command and target["password"] not in command
    argv = shlex.split(command)
    argv[0] = str(bin_dir / argv[0])  # the pg_restore of the server's version, as an operator would pick
    subprocess.run(
        argv, env={**os.environ, "PGPASSWORD": target["password"]}, check=True, capture_output=True
    )
    with psycopg.connect(target_url) as conn:
        assert conn.execute("SELECT note FROM kept").fetchall() == [("before the migration",)]


def test_a_backup_in_an_object_store_is_downloaded_first() -> None:
    command = restore_command(
        "s3://ops-backups/tutormax/run 1/pre-upgrade.dump", DbTarget("db.internal", 5432, "ops", "app")
    )
    assert command == (
        "download s3://ops-backups/tutormax/run 1/pre-upgrade.dump to ./pre-upgrade.dump, then: "
        "pg_restore --clean --if-exists --no-owner -h db.internal -p 5432 -U ops -d app pre-upgrade.dump"
    )
