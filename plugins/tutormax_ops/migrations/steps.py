"""The task bodies of `tutormax_migrations`: each DAG task calls exactly one function here."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import psycopg

from tutormax_ops.core.config import Settings, load_settings
from tutormax_ops.core.conn_ids import DB_CONN_ID
from tutormax_ops.core.coordination import exclusive
from tutormax_ops.core.db import collector_session, connect
from tutormax_ops.core.errors import ReportedFailure, fail_fast
from tutormax_ops.core.notify import send_email
from tutormax_ops.core.registry import RunRecord, store_run
from tutormax_ops.core.reports import render
from tutormax_ops.core.storage import path_segment, run_artifacts_dir
from tutormax_ops.migrations import apply as applying
from tutormax_ops.migrations.backup import choose_pg_dump, dump_to_storage, restore_command
from tutormax_ops.migrations.plan import preflight, validate_params
from tutormax_ops.migrations.runner import db_target, project_command

log = logging.getLogger(__name__)
DAG_ID = "tutormax_migrations"


def _skip(reason: str) -> None:
    """Skip the step, after storing "no result" as its return value: the steps after it read a skipped
    step's result (as None), and Airflow's client logs a missing one as "[error] XCom not found" in a
    run that succeeded."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowSkipException

    get_current_context()["ti"].xcom_push("return_value", None)
    raise AirflowSkipException(reason)


@contextlib.contextmanager
def _migration_session(settings: Settings) -> Iterator[psycopg.Connection]:
    with connect(
        DB_CONN_ID,
        statement_timeout_ms=settings.migrations.statement_timeout_ms,
        lock_timeout_ms=settings.migrations.lock_timeout_ms,
        application_name="tutormax_ops_migrations",
    ) as conn:
        yield conn


def _folder(settings: Settings, run_id: str, *, reset: bool = False) -> Any:
    return run_artifacts_dir(settings.storage.artifacts_uri(), DAG_ID, run_id, reset=reset)


@fail_fast
def preflight_step(params: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    run = validate_params(params)  # before any server is touched
    settings = load_settings(with_variable=True)
    alembic = project_command(settings)
    with collector_session(DB_CONN_ID, settings) as conn:
        plan = preflight(run, settings, alembic.target, alembic, conn)
    plan["artifacts"] = str(_folder(settings, run_id, reset=True))
    log.info(
        "preflight: %s at %s, head %s, target %s, %s %s",
        plan["database"],
        plan["current"] or "base",
        plan["heads"],
        plan["target"] or "base",
        "to revert" if plan["action"] == "downgrade" else "pending",
        plan["pending"],
    )
    return plan


@fail_fast
def preview_step(plan: Mapping[str, Any], run_id: str) -> str:
    """`alembic … --sql` into `preview.sql` (and the log); nothing is applied."""
    if plan["action"] != "preview_sql":
        _skip(f"action is {plan['action']}")
    settings = load_settings(with_variable=True)
    if plan["pending"]:
        args = applying.alembic_args(plan["direction"], plan["current"], plan["target"], offline=True)
        text = project_command(settings).run(args).stdout
    else:
        text = f"-- nothing to apply: the database is at {plan['current'] or 'base'}, the target\n"
    path = _folder(settings, run_id) / "preview.sql"
    path.write_text(text)
    log.info("preview stored at %s (%d lines)", path, text.count("\n"))
    return str(path)


@fail_fast
def backup_step(plan: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    if plan["action"] == "preview_sql":
        _skip("preview_sql applies nothing")
    if not plan["params"]["backup_first"]:
        _skip("backup_first is false")
    if not plan["pending"]:
        _skip("nothing to apply")
    settings = load_settings(with_variable=True)
    pg_dump = choose_pg_dump(plan["server_version_num"], settings.migrations.pg_dump_path)
    target = db_target(DB_CONN_ID)
    name = f"{path_segment(target.database)}_{path_segment('_'.join(plan['current']) or 'base')}.dump"
    return dump_to_storage(
        pg_dump,
        target,
        _folder(settings, run_id),
        name,
        lock_wait_ms=settings.migrations.lock_timeout_ms,
        timeout_s=settings.migrations.command_timeout_s,
    )


@fail_fast
def apply_step(
    plan: Mapping[str, Any], backup: Mapping[str, Any] | None, run_id: str, started_at: datetime
) -> dict[str, Any]:
    """Under the shared advisory lock. A failure is stored and emailed with the backup's location, and
    fails the task at once: a retry of a failed migration is not the operator's decision to make."""
    if plan["action"] == "preview_sql":
        _skip("preview_sql applies nothing")
    settings = load_settings(with_variable=True)
    if not plan["pending"]:
        log.info("nothing to apply: the database is at the target %s", plan["target"] or "base")
        return {"from": plan["current"], "to": plan["current"], "applied": []}
    try:
        with (
            _migration_session(settings) as conn,
            exclusive(
                conn, settings.coordination.advisory_lock_key, wait_s=settings.coordination.lock_wait_seconds
            ),
        ):
            applied = applying.apply(dict(plan), settings, project_command(settings), conn)
    except Exception as error:
        _record(settings, run_id, started_at, "failed", plan, backup, error=str(error))
        _email_failure(settings, plan, backup, run_id, str(error))
        raise ReportedFailure(f"{type(error).__name__}: {error}") from error
    return {**applied, "applied": plan["pending"]}


@fail_fast
def verify_step(
    plan: Mapping[str, Any],
    backup: Mapping[str, Any] | None,
    applied: Mapping[str, Any],
    run_id: str,
    started_at: datetime,
) -> dict[str, Any]:
    if plan["action"] == "preview_sql":
        _skip("preview_sql applies nothing")
    settings = load_settings(with_variable=True)
    try:
        with _migration_session(settings) as conn:
            verified = applying.verify(dict(plan), settings, conn)
    except Exception as error:
        _record(settings, run_id, started_at, "failed", plan, backup, error=str(error))
        raise
    _record(settings, run_id, started_at, "success", plan, backup, applied=applied, verified=verified)
    return verified


def announce_step(applied: Mapping[str, Any], outlet_event: Any) -> dict[str, Any]:
    """Emit `tutormax_schema_migrated` only for a change: with no revision applied the task skips, so
    no event invalidates and warms the cache and load-tests the service for nothing. The event's
    metadata names the revisions (`from`, `to`, `applied`)."""
    if not applied.get("applied"):
        _skip(f"nothing was applied (the database is at {applied.get('to') or 'base'}): no Asset event")
    change = {key: applied.get(key) for key in ("from", "to", "applied")}
    outlet_event.extra = change
    log.info("schema changed from %s to %s: emitting the Asset event", change["from"], change["to"])
    return change


def _record(
    settings: Settings,
    run_id: str,
    started_at: datetime,
    status: str,
    plan: Mapping[str, Any],
    backup: Mapping[str, Any] | None,
    **details: Any,
) -> None:
    summary = {
        "action": plan["action"],
        "from": plan["current"],
        "target": plan["target"],
        "pending": plan["pending"],
        "backup": dict(backup) if backup else None,
        **details,
    }
    moved = f"{'+'.join(plan['current']) or 'base'} → {plan['target'] or 'base'}"
    error = f": {details['error']}" if "error" in details else ""
    store_run(
        settings,
        RunRecord(
            dag_id=DAG_ID,
            run_id=run_id,
            kind="migration",
            started_at=started_at,
            status=status,
            headline=f"{plan['action']} {moved}, {len(plan['pending'])} pending: {status}{error}",
            details=summary,
            artifacts_uri=plan["artifacts"],
        ),
    )


def _email_failure(
    settings: Settings, plan: Mapping[str, Any], backup: Mapping[str, Any] | None, run_id: str, error: str
) -> None:
    html = render(
        "migration_failed_email.html",
        dag_id=DAG_ID,
        run_id=run_id,
        plan=plan,
        backup=backup,
        error=error,
        restore=restore_command(backup["path"], db_target(DB_CONN_ID)) if backup else None,
    )
    send_email(
        subject=f"migration {plan['action']} to {plan['target'] or 'base'} failed ({run_id})", html=html
    )
