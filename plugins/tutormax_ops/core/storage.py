"""Where results go: artifacts under an ObjectStoragePath keyed by DAG run, history rows upserted
into the results database. Both are idempotent: a rerun overwrites, it never duplicates."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from tutormax_ops.core.conn_ids import RESULTS_CONN_ID
from tutormax_ops.core.db import load_sql

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from tutormax_ops.core.config import Settings

_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def path_segment(value: str) -> str:
    """A run id such as `manual__2026-11-28T08:00:00+00:00` as one safe path segment."""
    return _UNSAFE_PATH_CHARS.sub("_", value).strip("._") or "_"


def run_artifacts_dir(base_uri: str, dag_id: str, run_id: str, *, reset: bool = True) -> ObjectStoragePath:
    """The folder for one DAG run's artifacts; `reset` empties what an earlier attempt left there."""
    from airflow.sdk import ObjectStoragePath

    folder = ObjectStoragePath(base_uri.rstrip("/")) / path_segment(dag_id) / path_segment(run_id)
    if reset and folder.exists():
        folder.rmdir(recursive=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Two DAGs starting on a new results database would both create the tables and tie them to the run
# registry; the second waits for the first (a transaction-level lock, in the two-key space).
SCHEMA_LOCK = (31, 1)


@contextmanager
def results_db(settings: Settings, *, read_only: bool = False) -> Iterator[psycopg.Connection]:
    """A session on `tutormax_results`; writers make sure the history schema exists first."""
    from tutormax_ops.core.db import collector_session

    with collector_session(RESULTS_CONN_ID, settings, read_only=read_only) as conn:
        if not read_only:
            ensure_results_schema(conn, settings.storage.results_schema)
        yield conn


def ensure_results_schema(conn: psycopg.Connection, schema: str) -> None:
    """Create the history schema and tables if missing, and tie the capability tables to the run
    registry (once, moving their older runs into it): safe to run on every DAG run."""
    from tutormax_ops.core.registry import schema_is_current, tie_capability_tables

    # Every writing session passes here: a schema already current takes no lock, so DAG runs that
    # start together do not queue on the schema lock into their lock_timeout (the tier's REST triggers
    # did, and a migration's verify failed on it).
    if schema_is_current(conn, schema):
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", SCHEMA_LOCK)
        conn.execute(load_sql("results/schema.sql", schema=schema))
        tie_capability_tables(conn, schema)


STAGING_TABLE = "tutormax_upsert_staging"  # a temporary table, dropped before the transaction ends


def upsert_rows(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str],
) -> int:
    """INSERT … ON CONFLICT (key) DO UPDATE: the rows of a rerun replace the earlier ones.

    The rows are copied (COPY) into a temporary table with the target's column types, then upserted by
    one statement: row by row, the 6,000 metrics rows of a 3,000-table run took a second. When a key
    repeats, the last row wins, as it did row by row.
    """
    if not rows:
        return 0
    columns = list(rows[0])
    updates = [column for column in columns if column not in key]
    unique = {tuple(row[column] for column in key): row for row in rows}.values()
    names = {
        "target": sql.Identifier(schema, table),
        "staging": sql.Identifier(STAGING_TABLE),
        "columns": sql.SQL(", ").join(map(sql.Identifier, columns)),
        "key": sql.SQL(", ").join(map(sql.Identifier, key)),
        "action": sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in updates)
        )
        if updates
        else sql.SQL("DO NOTHING"),
    }
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(
            sql.SQL(
                "CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS SELECT {columns} FROM {target} WITH NO DATA"
            ).format(**names)
        )
        with cursor.copy(sql.SQL("COPY {staging} ({columns}) FROM STDIN").format(**names)) as copy:
            for row in unique:
                copy.write_row([row[column] for column in columns])
        cursor.execute(
            sql.SQL(
                "INSERT INTO {target} ({columns}) SELECT {columns} FROM {staging} ON CONFLICT ({key}) {action}"
            ).format(**names)
        )
        cursor.execute(sql.SQL("DROP TABLE {staging}").format(**names))
    return len(rows)


def replace_run_rows(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    dag_id: str,
    run_id: str,
    key: Sequence[str],
) -> int:
    """Upsert one run's rows and delete that run's rows a rerun no longer produces."""
    with conn.transaction():
        kept = {tuple(row[column] for column in key) for row in rows}
        existing = conn.execute(
            sql.SQL("SELECT {key} FROM {table} WHERE dag_id = %s AND run_id = %s").format(
                key=sql.SQL(", ").join(map(sql.Identifier, key)),
                table=sql.Identifier(schema, table),
            ),
            (dag_id, run_id),
        ).fetchall()
        stale = [row for row in existing if tuple(row) not in kept]
        if stale:
            conn.cursor().executemany(
                sql.SQL("DELETE FROM {table} WHERE ({key}) = ({values})").format(
                    table=sql.Identifier(schema, table),
                    key=sql.SQL(", ").join(map(sql.Identifier, key)),
                    values=sql.SQL(", ").join([sql.Placeholder()] * len(key)),
                ),
                stale,
            )
        return upsert_rows(conn, schema, table, rows, key=key)
