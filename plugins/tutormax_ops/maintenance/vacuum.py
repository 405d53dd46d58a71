"""Step 3: the parallel, window-bounded VACUUM runner under the shared advisory lock.

It follows flexible_freeze and vacuumdb:
- tables are chosen by dead-tuple ratio or transaction-ID age, oldest relfrozenxid first;
- N autocommit sessions inside one task work through one queue, because one Airflow task per table
  costs seconds of overhead each;
- each statement is `VACUUM (ANALYZE, SKIP_LOCKED, TRUNCATE false, SKIP_DATABASE_STATS)`, with one
  `VACUUM (ONLY_DATABASE_STATS)` at the end on PostgreSQL 16+;
- no table starts after the window ends, and each statement's timeout is the time left in it;
- the whole step holds the advisory lock shared with migrations and load tests.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg import sql

from tutormax_ops.collectors.postgres.health import LockHolder, lock_holders
from tutormax_ops.core.config import load_settings
from tutormax_ops.core.conn_ids import DB_CONN_ID
from tutormax_ops.core.coordination import LockNotAcquired, exclusive
from tutormax_ops.core.db import connect, load_sql
from tutormax_ops.core.notify import redact
from tutormax_ops.core.windows import Window
from tutormax_ops.maintenance.common import (
    Mode,
    TableRef,
    display_name,
    error_line,
    folder_of,
    load_step,
    recording_failure,
    save_step,
)
from tutormax_ops.maintenance.plan import Plan

APPLICATION_NAME = "tutormax_ops.maintenance"  # what a migration waiting for the lock is told
# The control session polls the advisory lock and updates datfrozenxid once at the end: one scan of
# pg_class, seconds even on a large catalog, and it must run after the window ends too.
CONTROL_STATEMENT_TIMEOUT_MS = 300_000
STATEMENT_TIMEOUT_SLACK_MS = 1000  # a statement may run this much past the window's end, no more
PG16 = 160_000
PG18 = 180_000
Outcome = Literal["done", "skipped_locked", "timed_out", "error", "deferred", "unknown"]
RunStatus = Literal["completed", "partial", "failed", "skipped", "dry_run", "incomplete"]
_LOCK_NOT_AVAILABLE = "55P03"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableOutcome:
    schema: str
    table: str
    outcome: Outcome
    duration_s: float
    detail: str | None = None


@dataclass(frozen=True)
class VacuumResult:
    status: RunStatus
    detail: str
    outcomes: tuple[TableOutcome, ...]  # in plan order
    lock_waited_s: float | None
    database_stats: str  # how datfrozenxid was brought up to date, or why not
    server_version_num: int | None
    elapsed_s: float
    lock_holders: tuple[LockHolder, ...] = ()  # who held the tables skipped as locked, when skipped


def maintenance_statement(
    mode: Mode, *, truncate: bool, server_version_num: int
) -> Callable[[TableRef], sql.Composed]:
    """The statement for each table in `mode`, with the options this server supports."""
    if mode == "analyze_only":
        template = load_sql("maintenance/analyze.sql")
        return lambda table: template.format(table=table.identifier)
    options = ["FREEZE"] if mode == "vacuum_freeze_analyze" else []
    options += ["ANALYZE", "SKIP_LOCKED"]
    if not truncate:
        options.append("TRUNCATE false")  # truncating the tail briefly takes ACCESS EXCLUSIVE
    if server_version_num >= PG16:
        options.append("SKIP_DATABASE_STATS")
    template = load_sql("maintenance/vacuum.sql")
    joined = sql.SQL(", ".join(options))  # constants above, never user input
    return lambda table: template.format(options=joined, table=table.identifier)


def parent_statement(*, server_version_num: int) -> Callable[[TableRef], sql.Composed]:
    """ANALYZE of a partitioned table itself: ONLY on PostgreSQL 18+, which has it."""
    template = load_sql("maintenance/analyze_parent.sql")
    only = sql.SQL("ONLY " if server_version_num >= PG18 else "")  # constants, never user input
    return lambda table: template.format(only=only, table=table.identifier)


def execute_plan(
    conn_id: str,
    plan: Plan,
    *,
    lock_key: int,
    lock_wait_s: float,
    window: Window | None = None,
    started_at: datetime | None = None,
) -> VacuumResult:
    """Vacuum the planned tables over `parallel_jobs` sessions, holding the shared advisory lock.

    No table starts after `window` closes (by default, `window_minutes` from now). A scheduled run
    that started (`started_at`) after its window closed vacuums nothing and says so. When the lock
    stays taken for `lock_wait_s`, nothing is vacuumed and the result says who held it.
    """
    started = time.perf_counter()
    request = plan.request
    tables = [planned.ref for planned in plan.tables]
    if request.dry_run:
        detail = f"dry run: {len(tables)} tables planned, nothing vacuumed"
        return VacuumResult("dry_run", detail, (), None, "not needed (dry run)", None, 0.0)
    window = window or Window(datetime.now(UTC), request.window_minutes, scheduled=False)
    late = window.late_reason(started_at)
    if late:
        skipped = tuple(_deferred(table, late) for table in tables)
        return VacuumResult("skipped", late, skipped, None, "not needed (nothing vacuumed)", None, 0.0)
    deadline = time.monotonic() + window.remaining_s()
    if not tables or deadline <= time.monotonic():
        outcomes = [_not_started(table, window_ended=True) for table in tables]
        return _result(outcomes, None, "not needed (nothing vacuumed)", None, started)
    with connect(
        conn_id,
        statement_timeout_ms=CONTROL_STATEMENT_TIMEOUT_MS,
        lock_timeout_ms=request.lock_timeout_ms,
        application_name=APPLICATION_NAME,
    ) as control:
        version = control.info.server_version
        try:
            with exclusive(control, lock_key, wait_s=min(lock_wait_s, deadline - time.monotonic())) as waited:
                outcomes = _vacuum_over_sessions(conn_id, plan, tables, version, deadline)
                outcomes, holders = _name_lock_holders(control, outcomes)
                database_stats = _update_database_stats(control, request.mode, outcomes, version)
        except LockNotAcquired as error:
            reason = f"skipped: {error} (a migration or load test holds the shared maintenance lock)"
            skipped = tuple(_deferred(table, reason) for table in tables)
            return VacuumResult(
                "skipped", reason, skipped, None, "not needed (nothing vacuumed)", version, _since(started)
            )
    return _result(outcomes, waited, database_stats, version, started, holders)


def _name_lock_holders(
    control: psycopg.Connection, outcomes: list[TableOutcome]
) -> tuple[list[TableOutcome], tuple[LockHolder, ...]]:
    """Right after the tables were skipped as locked, which sessions hold them: each skipped table's
    detail names them (pid, user, application, since when)."""
    skipped = [(o.schema, o.table) for o in outcomes if o.outcome == "skipped_locked"]
    try:
        holders = lock_holders(control, skipped)
    except psycopg.Error as error:  # the skip stands; only its explanation is missing
        log.warning("could not read who holds the locked tables: %s", error_line(error))
        return outcomes, ()
    by_table: dict[tuple[str, str], list[LockHolder]] = {}
    for holder in holders:
        by_table.setdefault((holder.schema, holder.table), []).append(holder)
    named = [
        dataclasses.replace(o, detail=f"{o.detail}; held by {'; '.join(map(describe_holder, by_table[key]))}")
        if (key := (o.schema, o.table)) in by_table
        else o
        for o in outcomes
    ]
    return named, tuple(holders)


def describe_holder(holder: LockHolder) -> str:
    since = holder.xact_start or holder.query_start
    return (
        f"pid {holder.pid} (user {holder.username or 'unknown'}, application {holder.application_name or ''!r}, "
        f"{holder.mode}, {holder.state or 'state unknown'}"
        + (f", transaction since {since:%Y-%m-%d %H:%M:%S %Z}" if since else "")
        + ")"
    )


def _vacuum_over_sessions(
    conn_id: str, plan: Plan, tables: Sequence[TableRef], version: int, deadline: float
) -> list[TableOutcome]:
    request = plan.request
    maintain = maintenance_statement(request.mode, truncate=request.truncate, server_version_num=version)
    actions = {planned.ref: planned.action for planned in plan.tables}
    statements = {
        "maintain": maintain,
        "analyze": maintenance_statement(
            "analyze_only", truncate=request.truncate, server_version_num=version
        ),
        "analyze_parent": parent_statement(server_version_num=version),
    }

    def statement_for(table: TableRef) -> sql.Composed:
        return statements[actions[table]](table)

    with ExitStack() as sessions:
        # Opened here, one after another: the hook's connection lookup is not meant for threads.
        connections = [
            sessions.enter_context(
                connect(
                    conn_id,
                    statement_timeout_ms=max(_remaining_ms(deadline), 1),  # 0 would mean "no limit"
                    lock_timeout_ms=request.lock_timeout_ms,
                    application_name=APPLICATION_NAME,
                )
            )
            for _ in range(min(request.parallel_jobs, len(tables)))
        ]
        return vacuum_tables(connections, tables, statement_for, deadline=deadline)


def vacuum_tables(
    connections: Sequence[psycopg.Connection],
    tables: Sequence[TableRef],
    statement_for: Callable[[TableRef], sql.Composable],
    *,
    deadline: float,
) -> list[TableOutcome]:
    """Run `statement_for(table)` for every table, one thread per autocommit session, sharing one queue.

    `deadline` is a time.monotonic() value: no table starts after it, and each statement may run only
    for the time left. Returns one outcome per table, in the order of `tables`.
    """
    queue = deque(tables)
    outcomes: dict[TableRef, TableOutcome] = {}
    # Composed once, before the sessions start: composing inside the workers held the GIL the other
    # session needed, a sixth of each small table's round trip.
    statements = (
        {table: statement_for(table).as_bytes(connections[0]) for table in tables} if connections else {}
    )
    workers = [
        threading.Thread(
            target=_work_through, args=(conn, queue, statements, deadline, outcomes), daemon=True
        )
        for conn in connections
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    window_ended = deadline <= time.monotonic()
    return [outcomes.get(table) or _not_started(table, window_ended) for table in tables]


def _work_through(
    conn: psycopg.Connection,
    queue: deque[TableRef],
    statements: Mapping[TableRef, bytes],
    deadline: float,
    outcomes: dict[TableRef, TableOutcome],
) -> None:
    warnings: list[_Warning] = []

    def keep_warning(diagnostic: psycopg.errors.Diagnostic) -> None:
        # SKIP_LOCKED does not raise: it skips the table with a WARNING, which only a notice handler
        # sees. A Diagnostic is valid only inside the handler, so its fields are copied here.
        if diagnostic.severity_nonlocalized == "WARNING":
            warnings.append(_Warning(diagnostic.sqlstate, diagnostic.message_primary))

    conn.add_notice_handler(keep_warning)
    timeout_ms: int | None = None  # the session's statement_timeout, as last set
    while True:
        remaining_ms = _remaining_ms(deadline)
        if remaining_ms <= 0:
            return
        try:
            table = queue.popleft()  # atomic: two sessions never take the same table
        except IndexError:
            return
        warnings.clear()
        started = time.perf_counter()
        try:
            # The time left in the window, to the second: set again only once it is a second shorter,
            # so that thousands of small tables do not pay a second round trip each.
            if timeout_ms is None or timeout_ms - remaining_ms > STATEMENT_TIMEOUT_SLACK_MS:
                conn.execute(
                    "SELECT pg_catalog.set_config('statement_timeout', %s, false)", (f"{remaining_ms}ms",)
                )
                timeout_ms = remaining_ms
            conn.execute(statements[table])
            outcome, detail = _from_warnings(warnings)
        except psycopg.errors.QueryCanceled:
            outcome, detail = (
                "timed_out",
                f"stopped by statement_timeout at the end of the window ({remaining_ms} ms)",
            )
        except psycopg.errors.LockNotAvailable as error:
            outcome, detail = "skipped_locked", error_line(error)
        except Exception as error:  # recorded as this table's outcome; the other tables go on
            outcome, detail = "error", f"{type(error).__name__}: {error_line(error)}"
        outcomes[table] = TableOutcome(
            table.schema, table.table, outcome, round(time.perf_counter() - started, 3), detail
        )
        if conn.broken:
            return  # its share of the queue goes to the sessions still alive


@dataclass(frozen=True)
class _Warning:
    sqlstate: str | None
    message: str | None


def _from_warnings(warnings: Sequence[_Warning]) -> tuple[Outcome, str | None]:
    messages = [redact(warning.message or "") for warning in warnings]
    for warning, message in zip(warnings, messages, strict=True):
        if warning.sqlstate == _LOCK_NOT_AVAILABLE:
            return "skipped_locked", message
        if "skipping" in message:  # e.g. permission denied, or the table was dropped meanwhile
            return "error", message
    # Other warnings (e.g. "oldest xmin is far in the past") do not stop VACUUM; they are kept.
    return "done", "; ".join(messages) or None


def _update_database_stats(
    control: psycopg.Connection, mode: Mode, outcomes: Sequence[TableOutcome], version: int
) -> str:
    if mode == "analyze_only":
        return "not needed (ANALYZE does not freeze)"
    if version < PG16:
        return "updated by each VACUUM (SKIP_DATABASE_STATS needs PostgreSQL 16+)"
    if not any(outcome.outcome == "done" for outcome in outcomes):
        return "not needed (no table vacuumed)"
    try:
        control.execute(load_sql("maintenance/database_stats.sql"))
    except psycopg.Error as error:  # autovacuum will catch up; the report says so
        return f"error: VACUUM (ONLY_DATABASE_STATS) failed: {error_line(error)}"
    return "updated once by VACUUM (ONLY_DATABASE_STATS)"


def _result(
    outcomes: Sequence[TableOutcome],
    waited: float | None,
    database_stats: str,
    version: int | None,
    started: float,
    holders: tuple[LockHolder, ...] = (),
) -> VacuumResult:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
    # "0 of N done" with errors is a failure, not "partial"; locked or deferred tables alone stay
    # "partial" (the next run takes them).
    if counts.keys() <= {"done"}:
        status: RunStatus = "completed"
    elif counts.get("error") and not counts.get("done"):
        status = "failed"
    else:
        status = "partial"
    detail = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in sorted(counts.items()))
    return VacuumResult(
        status,
        detail or "no table needed maintenance",
        tuple(outcomes),
        None if waited is None else round(waited, 3),
        database_stats,
        version,
        _since(started),
        holders,
    )


def _remaining_ms(deadline: float) -> int:
    return max(math.ceil((deadline - time.monotonic()) * 1000), 0)


def _not_started(table: TableRef, window_ended: bool) -> TableOutcome:
    if window_ended:
        return _deferred(table, "the window ended before it could start")
    # Tables stay queued before the window ends only when every session broke.
    return TableOutcome(table.schema, table.table, "error", 0.0, "every maintenance session was lost first")


def _deferred(table: TableRef, reason: str) -> TableOutcome:
    return TableOutcome(table.schema, table.table, "deferred", 0.0, reason)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def summary(result: VacuumResult, path: str, folder: str) -> dict[str, Any]:
    """What travels through XCom: where the result is, the status and the counts per outcome."""
    counts: dict[str, int] = {}
    for outcome in result.outcomes:
        counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
    return {
        "folder": folder,
        "path": path,
        "status": result.status,
        "detail": result.detail[:500],
        "outcomes": counts,
    }


def vacuum(plan: Mapping[str, Any], *, window: Window, started_at: datetime | None) -> dict[str, Any]:
    """Run the saved plan inside the run's window; save the outcome of every table to the run's folder."""
    coordination = load_settings(with_variable=True).coordination
    folder = folder_of(plan)
    with recording_failure(folder, "vacuum"):
        result = execute_plan(
            DB_CONN_ID,
            load_step(Plan, folder, "plan"),
            lock_key=coordination.advisory_lock_key,
            lock_wait_s=coordination.lock_wait_seconds,
            window=window,
            started_at=started_at,
        )
    log.info(
        "vacuum %s in %.1f s: %s; database stats %s",
        result.status,
        result.elapsed_s,
        result.detail,
        result.database_stats,
    )
    not_done = [outcome for outcome in result.outcomes if outcome.outcome != "done"]
    for outcome in not_done[:50]:  # every table is in the report; the log shows the first ones
        log.warning(
            "  %s: %s (%.2f s) %s",
            display_name(outcome.schema, outcome.table),
            outcome.outcome,
            outcome.duration_s,
            outcome.detail or "",
        )
    return summary(result, save_step(folder, "vacuum", result), str(folder))
