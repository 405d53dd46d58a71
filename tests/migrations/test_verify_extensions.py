"""verify does not try CREATE EXTENSION pg_stat_statements as a role that may not: it says who can."""

from __future__ import annotations

import os

import psycopg
from psycopg import sql

from tutormax_ops.devstack.passwords import new_password, with_credentials
from tutormax_ops.migrations.apply import _ensure_pg_stat_statements


def test_a_migration_role_is_told_who_can_install_pg_stat_statements(fresh_database, pg_admin_url) -> None:
    url = fresh_database("verify_role")
    role, password = f"migrator_{os.getpid()}", new_password()
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )
    try:
        with psycopg.connect(url, autocommit=True) as owner:
            owner.execute("DROP EXTENSION IF EXISTS pg_stat_statements")
        parts = psycopg.conninfo.conninfo_to_dict(url)
        role_url = with_credentials(
            f"postgresql://{parts['host']}:{parts['port']}/{parts['dbname']}", role, password
        )
        with psycopg.connect(role_url, autocommit=True) as conn:
            warnings = _ensure_pg_stat_statements(conn)
        assert warnings[0] == (
            "pg_stat_statements is not installed in this database; a superuser can run "
            "CREATE EXTENSION pg_stat_statements"
        )
        assert not any("failed" in warning or "permission" in warning for warning in warnings)
        with psycopg.connect(url, autocommit=True) as owner:  # as a superuser it is created
            assert not any("not installed" in warning for warning in _ensure_pg_stat_statements(owner))
            assert owner.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone()
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
