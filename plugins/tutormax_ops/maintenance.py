"""Weekly database maintenance: snapshot, plan and a parallel, window-bounded VACUUM runner.

The runner follows flexible_freeze and vacuumdb:
- tables are chosen by dead-tuple ratio or transaction-ID age, oldest relfrozenxid first;
- N autocommit sessions inside one task work through one queue, because one Airflow task per table
  costs seconds of overhead each;
- each statement is `VACUUM (ANALYZE, SKIP_LOCKED, TRUNCATE false, SKIP_DATABASE_STATS)`, with one
  `VACUUM (ONLY_DATABASE_STATS)` at the end on PostgreSQL 16+;
- no table starts after the window ends, and each statement's timeout is the time left in it;
- the whole step holds the advisory lock shared with migrations and load tests.

Results travel between tasks as JSON (`to_jsonable` / `from_jsonable`), so XCom needs no custom class.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import threading
import time
import types
import typing
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import psycopg
from airflow.sdk.exceptions import AirflowFailException
from psycopg import sql

from tutormax_ops.collectors.postgres.bloat import table_bloat
from tutormax_ops.collectors.postgres.tables import table_stats
from tutormax_ops.core.config import Maintenance, load_settings
from tutormax_ops.core.conn_ids import DB_CONN_ID
from tutormax_ops.core.coordination import LockNotAcquired, exclusive
from tutormax_ops.core.db import collector_session, connect, load_sql
from tutormax_ops.core.notify import redact
from tutormax_ops.core.reports import to_json

APPLICATION_NAME = "tutormax_ops.maintenance"  # what a migration waiting for the lock is told
# The control session polls the advisory lock and updates datfrozenxid once at the end: one scan of
# pg_class, seconds even on a large catalog, and it must run after the window ends too.
CONTROL_STATEMENT_TIMEOUT_MS = 300_000
PG16 = 160_000

Mode = Literal["vacuum_analyze", "analyze_only", "vacuum_freeze_analyze"]
NotifyMode = Literal["always", "on_findings", "never"]
Outcome = Literal["done", "skipped_locked", "timed_out", "error", "deferred"]
RunStatus = Literal["completed", "partial", "skipped", "dry_run"]
T = TypeVar("T")
log = logging.getLogger(__name__)

_PLAIN_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_$]*")
_LOCK_NOT_AVAILABLE = "55P03"


class MaintenanceParamError(AirflowFailException):
    """A param names something the database does not have; the message starts with the field.

    An AirflowFailException, so the task fails at once: a retry cannot make a table exist.
    """


@dataclass(frozen=True)
class TableRef:
    schema: str
    table: str

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)

    @property
    def display(self) -> str:
        return display_name(self.schema, self.table)


def display_name(schema: str, table: str) -> str:
    """`public.orders`, or `"Mixed Case"."we""ird name"`: quoted only where SQL needs it."""
    return ".".join(
        part if _PLAIN_IDENTIFIER.fullmatch(part) else '"' + part.replace('"', '""') + '"'
        for part in (schema, table)
    )


@dataclass(frozen=True)
class Request:
    """The run's params over the configured defaults: everything the plan and the runner obey."""

    schemas: tuple[str, ...]
    tables: tuple[str, ...]
    exclude_tables: tuple[str, ...]
    mode: Mode
    min_dead_tuple_ratio: float
    min_xid_age: int
    parallel_jobs: int
    window_minutes: int
    lock_timeout_ms: int
    truncate: bool
    dry_run: bool
    notify: NotifyMode


def request_from_params(params: Mapping[str, Any], maintenance: Maintenance) -> Request:
    """Params already passed the DAG's schema; an empty or null one means "the configured value"."""

    def pick(name: str, configured: Any) -> Any:
        value = params.get(name)
        return configured if value is None or value == [] else value

    return Request(
        schemas=tuple(pick("schemas", maintenance.schemas)),
        tables=tuple(params.get("tables") or ()),
        exclude_tables=maintenance.exclude_tables,
        mode=params.get("mode") or "vacuum_analyze",
        min_dead_tuple_ratio=float(pick("min_dead_tuple_ratio", maintenance.min_dead_tuple_ratio)),
        min_xid_age=maintenance.min_xid_age,
        parallel_jobs=int(pick("parallel_jobs", maintenance.parallel_jobs)),
        window_minutes=int(pick("window_minutes", maintenance.window_minutes)),
        lock_timeout_ms=maintenance.lock_timeout_ms,
        truncate=maintenance.truncate,
        dry_run=bool(params.get("dry_run", False)),
        notify=params.get("notify") or "always",
    )


# --- Snapshot -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSnapshot:
    """One table's size, tuples, bloat estimate and maintenance history at one moment."""

    schema: str
    table: str
    total_bytes: int | None  # sizes are None while another session holds ACCESS EXCLUSIVE on the table
    table_bytes: int | None  # pg_table_size: heap, TOAST and the free-space and visibility maps
    heap_bytes: int | None
    index_bytes: int | None
    toast_bytes: int | None
    live_tuples: int
    dead_tuples: int
    dead_ratio: float | None
    mods_since_analyze: int
    bloat_bytes: int | None
    bloat_ratio: float | None
    xid_age: int | None
    last_vacuum: datetime | None
    last_autovacuum: datetime | None
    last_analyze: datetime | None
    last_autoanalyze: datetime | None

    @property
    def ref(self) -> TableRef:
        return TableRef(self.schema, self.table)


@dataclass(frozen=True)
class Snapshot:
    phase: Literal["before", "after"]
    collected_at: datetime
    tables: tuple[TableSnapshot, ...]


def take_snapshot(
    conn: psycopg.Connection, schemas: Sequence[str], phase: Literal["before", "after"]
) -> Snapshot:
    """Table statistics joined with the catalog bloat estimate, for every user table of `schemas`."""
    collected_at = datetime.now(UTC)
    bloat = {(row.schema, row.table): row for row in table_bloat(conn, schemas=schemas)}
    tables = []
    for stats in table_stats(conn, schemas=schemas):
        estimate = bloat.get((stats.schema, stats.table))
        estimable = estimate is not None and estimate.estimable
        tables.append(
            TableSnapshot(
                schema=stats.schema,
                table=stats.table,
                total_bytes=stats.total_bytes,
                table_bytes=stats.table_bytes,
                heap_bytes=stats.heap_bytes,
                index_bytes=stats.index_bytes,
                toast_bytes=stats.toast_bytes,
                live_tuples=stats.live_tuples,
                dead_tuples=stats.dead_tuples,
                dead_ratio=stats.dead_ratio,
                mods_since_analyze=stats.mods_since_analyze,
                bloat_bytes=estimate.bloat_bytes if estimable else None,
                bloat_ratio=estimate.bloat_percent / 100 if estimable else None,
                xid_age=stats.xid_age,
                last_vacuum=stats.last_vacuum,
                last_autovacuum=stats.last_autovacuum,
                last_analyze=stats.last_analyze,
                last_autoanalyze=stats.last_autoanalyze,
            )
        )
    return Snapshot(phase, collected_at, tuple(tables))


# --- Plan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedTable:
    schema: str
    table: str
    reason: str
    dead_tuples: int
    dead_ratio: float | None
    xid_age: int | None
    total_bytes: int | None

    @property
    def ref(self) -> TableRef:
        return TableRef(self.schema, self.table)


@dataclass(frozen=True)
class Plan:
    request: Request
    tables: tuple[PlannedTable, ...]  # in the order they are vacuumed
    excluded: tuple[str, ...]  # display names left out by `maintenance.exclude_tables`
    below_thresholds: int  # tables in scope that did not need maintenance
    notes: tuple[str, ...]


def build_plan(conn: psycopg.Connection, request: Request, snapshot: Snapshot) -> Plan:
    """Check the named schemas and tables on the server, then choose tables from the snapshot.

    Raises `MaintenanceParamError` naming the field for an unknown schema or table, before any VACUUM.
    """
    found = set(_fetch_scalars(conn, "maintenance/existing_schemas.sql", {"schemas": list(request.schemas)}))
    missing = [schema for schema in request.schemas if schema not in found]
    if missing:
        raise MaintenanceParamError(
            f"schemas: no schema named {', '.join(map(repr, missing))} in this database"
        )
    named, _ = resolve_tables(conn, request.tables, request.schemas, field="tables", strict=True)
    excluded, unknown = resolve_tables(
        conn, request.exclude_tables, request.schemas, field="maintenance.exclude_tables", strict=False
    )
    notes = tuple(f"maintenance.exclude_tables: no table {name!r} (ignored)" for name in unknown)
    return select_tables(
        snapshot, request, only=frozenset(named) or None, excluded=frozenset(excluded), notes=notes
    )


def resolve_tables(
    conn: psycopg.Connection, names: Sequence[str], schemas: Sequence[str], *, field: str, strict: bool
) -> tuple[list[TableRef], list[str]]:
    """Resolve SQL-style names (unqualified ones through `schemas`); return (tables, unknown names).

    With `strict`, an unknown name, a relation that is not a table or a table outside `schemas`
    raises `MaintenanceParamError` naming `field` instead.
    """
    search_path = sql.SQL(", ").join(map(sql.Identifier, schemas)).as_string(conn)
    resolved: list[TableRef] = []
    unknown: list[str] = []
    for name in names:
        try:
            with conn.transaction():
                # Local to this transaction: the session's own search_path is left as it was.
                conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (search_path,))
                rows = conn.execute(load_sql("maintenance/resolve_table.sql"), {"name": name}).fetchall()
        except (psycopg.errors.SyntaxError, psycopg.errors.InvalidName, psycopg.DataError) as error:
            raise MaintenanceParamError(f"{field}: {name!r} is not a valid table name ({error})") from None
        problem = _name_problem(name, rows, schemas)
        if problem is None:
            resolved.append(TableRef(rows[0][0], rows[0][1]))
        elif strict:
            raise MaintenanceParamError(f"{field}: {problem}")
        else:
            unknown.append(name)
    return resolved, unknown


def _name_problem(name: str, rows: Sequence[tuple[str, str, str]], schemas: Sequence[str]) -> str | None:
    if not rows:
        return f"no table {name!r} in this database (searched schemas {list(schemas)})"
    schema, table, kind = rows[0]
    if kind not in ("r", "m", "p"):
        return f"{display_name(schema, table)} is not a table (relkind {kind!r})"
    if schema not in schemas:
        return f"{display_name(schema, table)} is outside schemas {list(schemas)}: add {schema!r} to schemas"
    return None


def select_tables(
    snapshot: Snapshot,
    request: Request,
    *,
    only: frozenset[TableRef] | None = None,
    excluded: frozenset[TableRef] = frozenset(),
    notes: tuple[str, ...] = (),
) -> Plan:
    """The tables worth the window, oldest relfrozenxid first (as flexible_freeze), then most dead tuples.

    Vacuum modes take a table when its dead-tuple ratio reaches `min_dead_tuple_ratio` or its xid age
    reaches `min_xid_age`; analyze_only takes it when never analyzed or when that share of its rows
    changed since the last analyze.
    """
    chosen: list[PlannedTable] = []
    left_out: list[str] = []
    below = 0
    for row in snapshot.tables:
        if only is not None and row.ref not in only:
            continue
        if row.ref in excluded:
            left_out.append(row.ref.display)
            continue
        reason = _selection_reason(row, request)
        if reason is None:
            below += 1
            continue
        chosen.append(
            PlannedTable(
                row.schema, row.table, reason, row.dead_tuples, row.dead_ratio, row.xid_age, row.total_bytes
            )
        )
    chosen.sort(key=lambda t: (-(t.xid_age or 0), -t.dead_tuples, t.schema, t.table))
    return Plan(request, tuple(chosen), tuple(left_out), below, notes)


def _selection_reason(row: TableSnapshot, request: Request) -> str | None:
    if request.mode == "analyze_only":
        if row.last_analyze is None and row.last_autoanalyze is None:
            return "never analyzed"
        changed = row.mods_since_analyze / max(row.live_tuples, 1)
        if changed >= request.min_dead_tuple_ratio:
            return f"{changed:.1%} of rows changed since the last analyze"
        return None
    reasons = []
    if row.xid_age is not None and row.xid_age >= request.min_xid_age:
        reasons.append(f"xid age {row.xid_age:,} ≥ {request.min_xid_age:,}")
    ratio = row.dead_ratio or 0.0
    if ratio >= request.min_dead_tuple_ratio:
        reasons.append(f"{ratio:.1%} dead tuples ≥ {request.min_dead_tuple_ratio:.1%}")
    return "; ".join(reasons) or None


# --- Vacuum -------------------------------------------------------------------------------------


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


def execute_plan(
    conn_id: str,
    plan: Plan,
    *,
    lock_key: int,
    lock_wait_s: float,
    window_started_at: datetime | None = None,
) -> VacuumResult:
    """Vacuum the planned tables over `parallel_jobs` sessions, holding the shared advisory lock.

    The window runs from `window_started_at` (the DAG run's start; now by default). When the lock
    stays taken for `lock_wait_s`, nothing is vacuumed and the result says who held it.
    """
    started = time.perf_counter()
    request = plan.request
    tables = [planned.ref for planned in plan.tables]
    if request.dry_run:
        detail = f"dry run: {len(tables)} tables planned, nothing vacuumed"
        return VacuumResult("dry_run", detail, (), None, "not needed (dry run)", None, 0.0)
    deadline = _window_deadline(window_started_at, request.window_minutes)
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
                database_stats = _update_database_stats(control, request.mode, outcomes, version)
        except LockNotAcquired as error:
            reason = f"skipped: {error} (a migration or load test holds the shared maintenance lock)"
            skipped = tuple(_deferred(table, reason) for table in tables)
            return VacuumResult(
                "skipped", reason, skipped, None, "not needed (nothing vacuumed)", version, _since(started)
            )
    return _result(outcomes, waited, database_stats, version, started)


def _vacuum_over_sessions(
    conn_id: str, plan: Plan, tables: Sequence[TableRef], version: int, deadline: float
) -> list[TableOutcome]:
    request = plan.request
    statement_for = maintenance_statement(request.mode, truncate=request.truncate, server_version_num=version)
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
    workers = [
        threading.Thread(
            target=_work_through, args=(conn, queue, statement_for, deadline, outcomes), daemon=True
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
    statement_for: Callable[[TableRef], sql.Composable],
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
            conn.execute(
                "SELECT pg_catalog.set_config('statement_timeout', %s, false)", (f"{remaining_ms}ms",)
            )
            conn.execute(statement_for(table))
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
) -> VacuumResult:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
    status: RunStatus = "completed" if counts.keys() <= {"done"} else "partial"
    detail = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in sorted(counts.items()))
    return VacuumResult(
        status,
        detail or "no table needed maintenance",
        tuple(outcomes),
        None if waited is None else round(waited, 3),
        database_stats,
        version,
        _since(started),
    )


def _window_deadline(window_started_at: datetime | None, window_minutes: int) -> float:
    """The window's end on the monotonic clock, which wall-clock adjustments cannot move."""
    elapsed = (datetime.now(UTC) - window_started_at).total_seconds() if window_started_at else 0.0
    return time.monotonic() - elapsed + window_minutes * 60


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


def error_line(error: BaseException) -> str:
    """The first line of an error, credentials redacted: what reports and logs may show."""
    return redact(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)


def _fetch_scalars(conn: psycopg.Connection, path: str, params: Mapping[str, Any]) -> list[Any]:
    return [row[0] for row in conn.execute(load_sql(path), dict(params)).fetchall()]


# --- JSON between tasks -------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """A dataclass as plain JSON types (datetimes as ISO strings), the form XCom stores."""
    return json.loads(to_json(dataclasses.asdict(value)))


def from_jsonable(cls: type[T], data: Mapping[str, Any]) -> T:
    """Rebuild a (nested) frozen dataclass from `to_jsonable` output, using its type hints."""
    hints = typing.get_type_hints(cls)
    return cls(
        **{field.name: _convert(hints[field.name], data[field.name]) for field in dataclasses.fields(cls)}
    )


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin in (tuple, list):
        item = typing.get_args(hint)[0]
        items = [_convert(item, element) for element in value]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(hint):
        return from_jsonable(hint, value)
    if hint is datetime:
        return datetime.fromisoformat(value)
    return value


# --- Task entry points (JSON in, JSON out) --------------------------------------------------------


def snapshot_before_step(params: Mapping[str, Any]) -> dict[str, Any]:
    settings = load_settings(with_variable=True)
    request = request_from_params(params, settings.maintenance)
    with collector_session(DB_CONN_ID, settings) as conn:
        return to_jsonable(take_snapshot(conn, request.schemas, "before"))


def plan_step(params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    settings = load_settings(with_variable=True)
    request = request_from_params(params, settings.maintenance)
    with collector_session(DB_CONN_ID, settings) as conn:
        plan = build_plan(conn, request, from_jsonable(Snapshot, before))
    log.info(
        "%s plan: %d tables (%d below thresholds, %d excluded)%s",
        request.mode,
        len(plan.tables),
        plan.below_thresholds,
        len(plan.excluded),
        "; dry run, nothing will be vacuumed" if request.dry_run else "",
    )
    for planned in plan.tables:
        log.info("  %s: %s", planned.ref.display, planned.reason)
    return to_jsonable(plan)


def vacuum_step(plan: Mapping[str, Any], *, window_started_at: datetime | None) -> dict[str, Any]:
    coordination = load_settings(with_variable=True).coordination
    result = execute_plan(
        DB_CONN_ID,
        from_jsonable(Plan, plan),
        lock_key=coordination.advisory_lock_key,
        lock_wait_s=coordination.lock_wait_seconds,
        window_started_at=window_started_at,
    )
    log.info(
        "vacuum %s in %.1f s: %s; database stats %s",
        result.status,
        result.elapsed_s,
        result.detail,
        result.database_stats,
    )
    for outcome in result.outcomes:  # the tables that were not done; every table is in the report
        if outcome.outcome == "done":
            continue
        log.warning(
            "  %s: %s (%.2f s) %s",
            display_name(outcome.schema, outcome.table),
            outcome.outcome,
            outcome.duration_s,
            outcome.detail or "",
        )
    return to_jsonable(result)


def snapshot_after_step(plan: Mapping[str, Any]) -> dict[str, Any] | None:
    """None on a dry run: nothing changed, so there is no "after"."""
    request = from_jsonable(Plan, plan).request
    if request.dry_run:
        return None
    settings = load_settings(with_variable=True)
    with collector_session(DB_CONN_ID, settings) as conn:
        return to_jsonable(take_snapshot(conn, request.schemas, "after"))
