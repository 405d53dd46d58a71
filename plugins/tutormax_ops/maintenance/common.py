"""What every maintenance step shares: the run's request (params over the config), table names,
error lines, and the JSON form results take between tasks."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import json
import logging
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import psycopg
from airflow.sdk.exceptions import AirflowFailException
from pglast.keywords import COL_NAME_KEYWORDS, RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS
from psycopg import sql

from tutormax_ops.core.config import Maintenance, Settings
from tutormax_ops.core.db import load_sql
from tutormax_ops.core.notify import redact
from tutormax_ops.core.storage import run_artifacts_dir

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

Mode = Literal["vacuum_analyze", "analyze_only", "vacuum_freeze_analyze"]
NotifyMode = Literal["always", "on_findings", "never"]
T = TypeVar("T")

log = logging.getLogger(__name__)
_PLAIN_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_$]*")
# What quote_ident() quotes besides non-plain names: every keyword that is not UNRESERVED, from
# pglast (libpg_query's copy of PostgreSQL's kwlist.h), which the index suggestions already parse with.
_KEYWORDS_NEEDING_QUOTES = COL_NAME_KEYWORDS | RESERVED_KEYWORDS | TYPE_FUNC_NAME_KEYWORDS


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
    """`public.orders`, `public."select"` or `"Mixed Case"."we""ird name"`: valid SQL, quoted only
    where SQL needs it (as quote_ident does)."""
    return ".".join(map(quote_ident, (schema, table)))


def quote_ident(name: str) -> str:
    """The name as PostgreSQL's quote_ident() writes it: bare when plain and not a keyword."""
    if _PLAIN_IDENTIFIER.fullmatch(name) and name not in _KEYWORDS_NEEDING_QUOTES:
        return name
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Request:
    """The run's params over the configured defaults: everything the plan and the runner obey."""

    schemas: tuple[str, ...]
    tables: tuple[str, ...]
    exclude_tables: tuple[str, ...]
    mode: Mode
    min_dead_tuple_ratio: float
    min_xid_age: int
    min_mods_since_analyze_ratio: float
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
        min_mods_since_analyze_ratio=maintenance.min_mods_since_analyze_ratio,
        parallel_jobs=int(pick("parallel_jobs", maintenance.parallel_jobs)),
        window_minutes=int(pick("window_minutes", maintenance.window_minutes)),
        lock_timeout_ms=maintenance.lock_timeout_ms,
        truncate=maintenance.truncate,
        dry_run=bool(params.get("dry_run", False)),
        notify=params.get("notify") or "always",
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


def error_line(error: BaseException) -> str:
    """The first line of an error, credentials redacted: what reports and logs may show."""
    return redact(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)


def _fetch_scalars(conn: psycopg.Connection, path: str, params: Mapping[str, Any]) -> list[Any]:
    return [row[0] for row in conn.execute(load_sql(path), dict(params)).fetchall()]


def to_jsonable(value: Any) -> Any:
    """A (nested) dataclass as plain JSON types, datetimes as ISO strings: the form XCom and the step
    files store. Hand-walked: dataclasses.asdict deep-copies every leaf, seconds at 3,000 tables."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encoder(type(value))(value)
    return value


@functools.cache
def _encoder(cls: type) -> Callable[[Any], dict[str, Any]]:
    """A dataclass instance as a dict, built once per class: fields typed as JSON scalars are copied as
    they are, only the others are walked (per field, the walk was most of the time of saving a
    3,000-table snapshot)."""
    fields = [(name, _is_json_scalar(hint)) for name, hint in _fields(cls)]
    return lambda value: {
        name: getattr(value, name) if scalar else to_jsonable(getattr(value, name)) for name, scalar in fields
    }


_JSON_SCALARS = (str, int, float, bool, type(None))


def _is_json_scalar(hint: Any) -> bool:
    """Whether a type hint only admits values that JSON stores as they are (None, str, numbers, Literal)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return all(_is_json_scalar(arg) for arg in typing.get_args(hint))
    if origin is Literal:
        return all(isinstance(arg, _JSON_SCALARS) for arg in typing.get_args(hint))
    return hint in _JSON_SCALARS


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """A dataclass's field names and resolved type hints, once per class (resolving them per row was
    most of the time of loading a 3,000-table snapshot)."""
    hints = typing.get_type_hints(cls)
    return tuple((field.name, hints[field.name]) for field in dataclasses.fields(cls))


def from_jsonable(cls: type[T], data: Mapping[str, Any]) -> T:
    """Rebuild a (nested) frozen dataclass from `to_jsonable` output, using its type hints."""
    return _converter(cls)(data)


def _keep(value: Any) -> Any:
    return value


@functools.cache
def _converter(hint: Any) -> Callable[[Any], Any]:
    """A function turning JSON data back into `hint`, built once per type: per value, working out the
    type again was most of the time of loading a 3,000-table snapshot."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        inner = _converter(options[0]) if len(options) == 1 else _keep
        return lambda value: None if value is None else inner(value)
    if origin in (tuple, list):
        item = _converter(typing.get_args(hint)[0])
        kind = tuple if origin is tuple else list
        return lambda value: None if value is None else kind(item(element) for element in value)
    if dataclasses.is_dataclass(hint):
        scalars = [name for name, field_hint in _fields(hint) if _is_json_scalar(field_hint)]
        nested = [(name, _converter(h)) for name, h in _fields(hint) if not _is_json_scalar(h)]

        def build(data: Mapping[str, Any] | None) -> Any:
            if data is None:
                return None
            values = {name: data[name] for name in scalars if name in data}
            for name, convert in nested:
                if name in data:
                    values[name] = convert(data[name])
            return hint(**values)

        return build
    if hint is datetime:
        return lambda value: None if value is None else datetime.fromisoformat(value)
    return _keep


# --- The run's files: what steps hand each other, by reference ------------------------------------

STEPS_FOLDER = "steps"  # inside the run's artifacts folder; XCom carries only these paths


def run_folder(settings: Settings, dag_id: str, run_id: str, *, reset: bool = False) -> ObjectStoragePath:
    """The run's artifacts folder; `reset` (first step only) empties what an earlier attempt left."""
    return run_artifacts_dir(settings.storage.artifacts_uri(), dag_id, run_id, reset=reset)


def step_path(folder: ObjectStoragePath, step: str) -> ObjectStoragePath:
    """Where a step's result is: compact JSON, gzip-compressed (a 3,000-table snapshot is megabytes)."""
    return folder / STEPS_FOLDER / f"{step}.json.gz"


def save_step(folder: ObjectStoragePath, step: str, value: Any) -> str:
    """Write one step's result (a dataclass) under `steps/`; returns its location."""
    path = step_path(folder, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_jsonable(value), separators=(",", ":"))
    path.write_bytes(gzip.compress(text.encode(), compresslevel=5))
    return str(path)


def load_step(cls: type[T], folder: ObjectStoragePath, step: str) -> T | None:
    """A step's result, or None when that step left none (it failed, or has not run)."""
    data = load_step_data(folder, step)
    return None if data is None else from_jsonable(cls, data)


def load_step_data(folder: ObjectStoragePath, step: str) -> dict[str, Any] | None:
    """A step's result as saved (`to_jsonable` form), or None when that step left none."""
    path = step_path(folder, step)
    if not path.exists():
        return None
    return json.loads(gzip.decompress(path.read_bytes()))


FAILED_SUFFIX = ".failed.json"


@contextmanager
def recording_failure(folder: ObjectStoragePath, step: str) -> Iterator[None]:
    """Run a step's body; when it fails, save which step and why under `steps/` before re-raising, so
    the report and the outcome can name them (Airflow keeps the cause only in the task's log). An
    attempt that succeeds removes an earlier attempt's record. A skip is not a failure."""
    from airflow.sdk.exceptions import AirflowSkipException

    record = folder / STEPS_FOLDER / f"{step}{FAILED_SUFFIX}"
    try:
        yield
    except AirflowSkipException:
        raise
    except Exception as error:
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(
                json.dumps({"step": step, "cause": f"{type(error).__name__}: {error_line(error)}"})
            )
        except OSError:  # the artifacts store is down too: the task's log still has the cause
            log.warning("could not record the failure of %s under %s", step, redact(str(record)))
        raise
    if record.exists():
        record.unlink()


def step_failures(folder: ObjectStoragePath) -> dict[str, str]:
    """{step: cause} of the steps whose last attempt failed, from their records."""
    steps = folder / STEPS_FOLDER
    if not steps.exists():
        return {}
    records = (json.loads(path.read_text()) for path in steps.iterdir() if path.name.endswith(FAILED_SUFFIX))
    return {record["step"]: record["cause"] for record in records}


def folder_of(reference: Mapping[str, Any]) -> ObjectStoragePath:
    """The run folder named in a step's XCom summary."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(reference["folder"])
