"""The one way the PostgreSQL collectors talk to the server: a statement from
`include/sql/collectors/postgres/<name>.sql`, bound parameters, and rows built as frozen dataclasses.

Placeholders `{name}` in a file are filled only with `psycopg.sql` objects built here from trusted
constants or quoted identifiers (an extension's schema, a column chosen after checking that it exists).
Values always travel as bound parameters (`%(name)s`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import class_row, scalar_row

from tutormax_ops.core.db import load_sql

SQL_FOLDER = "collectors/postgres"

Row = TypeVar("Row")


def statement(name: str, **parts: sql.Composable) -> sql.Composable:
    """The statement of `<name>.sql`, its `{placeholders}` filled with the given composables."""
    text = load_sql(f"{SQL_FOLDER}/{name}.sql")
    return text.format(**parts) if parts else text


def fetch_all(
    conn: psycopg.Connection,
    name: str,
    row_type: type[Row],
    params: Mapping[str, Any] | None = None,
    **parts: sql.Composable,
) -> list[Row]:
    """Run `<name>.sql` and build one `row_type` per row; the columns are its fields, by name."""
    with conn.cursor(row_factory=class_row(row_type)) as cursor:
        # Always a mapping, even empty, so that `%%` in a file means `%` in every statement.
        cursor.execute(statement(name, **parts), dict(params or {}))
        return cursor.fetchall()


def fetch_one(
    conn: psycopg.Connection,
    name: str,
    row_type: type[Row],
    params: Mapping[str, Any] | None = None,
    **parts: sql.Composable,
) -> Row:
    """Run a statement that returns exactly one row."""
    rows = fetch_all(conn, name, row_type, params, **parts)
    if len(rows) != 1:
        raise RuntimeError(f"{name}.sql returned {len(rows)} rows, expected exactly one")
    return rows[0]


def fetch_scalars(
    conn: psycopg.Connection, name: str, params: Mapping[str, Any] | None = None, **parts: sql.Composable
) -> list[Any]:
    """The first column of every row."""
    with conn.cursor(row_factory=scalar_row) as cursor:
        cursor.execute(statement(name, **parts), dict(params or {}))
        return cursor.fetchall()


def extension_schema(conn: psycopg.Connection, extension: str) -> str | None:
    """The schema an extension is installed in, in the current database (None when not installed)."""
    schemas = fetch_scalars(conn, "extension_schema", {"extension": extension})
    return schemas[0] if schemas else None


def relation_columns(conn: psycopg.Connection, schema: str, relation: str) -> frozenset[str]:
    """The column names of a table or view: how collectors tell server and extension versions apart."""
    return frozenset(fetch_scalars(conn, "relation_columns", {"schema": schema, "relation": relation}))


def locked_relations(conn: psycopg.Connection) -> list[int]:
    """Oids with an ACCESS EXCLUSIVE lock held or queued: statements skip size and definition calls on
    them, which would otherwise wait behind the lock until lock_timeout fails the whole statement."""
    return fetch_scalars(conn, "locked_relations")


def column_or(columns: frozenset[str], alias: str, name: str, fallback: str) -> sql.Composable:
    """`alias.name` when the column exists, else the constant SQL `fallback` (e.g. `NULL`, `true`)."""
    return sql.Identifier(alias, name) if name in columns else sql.SQL(fallback)  # type: ignore[arg-type]


def first_column(columns: frozenset[str], alias: str, *names: str) -> sql.Identifier:
    """The first of `names` that exists, e.g. `total_exec_time` (PG13+) before `total_time`."""
    for name in names:
        if name in columns:
            return sql.Identifier(alias, name)
    raise LookupError(f"none of the columns {names} exists")


def optional_list(values: Sequence[str] | None) -> list[str] | None:
    """psycopg adapts a list, not any sequence, to an array parameter; None stays NULL (no filter)."""
    return list(values) if values is not None else None
