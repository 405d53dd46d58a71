"""Alembic migrations for any project: preflight, backup, apply, verify (the `tutormax_migrations` DAG)."""
