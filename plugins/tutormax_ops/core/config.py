"""The one typed settings model for every TutorMax Ops DAG.

Sources, lowest to highest precedence, deep-merged:
1. `include/config/*.yaml` in name order (or the folder named by `TUTORMAX_OPS_CONFIG_DIR`);
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
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tutormax_ops.core.paths import CONFIG_DIR, STATE_DIR

CONFIG_VARIABLE = "tutormax_ops_config"
ENV_PREFIX = "TUTORMAX_OPS__"
CONFIG_DIR_ENV = "TUTORMAX_OPS_CONFIG_DIR"

Percent = Annotated[float, Field(ge=0, le=100)]
PositiveMs = Annotated[float, Field(gt=0)]
Cron = Annotated[str, Field(min_length=9, pattern=r"^(@\w+|(\S+\s+){4}\S+)$")]


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Targets(_Section):
    cache_hit_rate_percent: Percent = 80
    p95_api_ms: PositiveMs = 200
    p95_query_ms: PositiveMs = 100
    throughput_rps: Annotated[float, Field(ge=0)] = 200
    error_rate_percent: Percent = 1


class Alerts(_Section):
    cache_hit_rate_percent: Percent = 70
    p95_api_ms: PositiveMs = 300
    slow_query_rate_percent: Percent = 15
    error_rate_percent: Percent = 1
    slow_query_ms: PositiveMs = 100


class Collectors(_Section):
    statement_timeout_ms: Annotated[int, Field(ge=100, le=600_000)] = 5000
    lock_timeout_ms: Annotated[int, Field(ge=10, le=600_000)] = 1000
    redis_key_patterns: tuple[str, ...] = ("tutormax:cache:*",)
    redis_scan_limit: Annotated[int, Field(ge=1)] = 100_000


class Storage(_Section):
    artifacts_base: str = ""
    results_schema: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "tutormax_ops"

    def artifacts_uri(self) -> str:
        """The ObjectStoragePath URI under which every run's artifacts are written."""
        return self.artifacts_base or (STATE_DIR / "artifacts").as_uri()


class Coordination(_Section):
    advisory_lock_key: int = Field(7467867001, ge=-(2**63), le=2**63 - 1)
    lock_wait_seconds: Annotated[float, Field(ge=0, le=86_400)] = 300


class Notify(_Section):
    recipients: tuple[str, ...] = ("sre@tutormax.example",)
    subject_prefix: str = "[TutorMax Ops]"

    @field_validator("recipients")
    @classmethod
    def _looks_like_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [address for address in value if "@" not in address]
        if bad:
            raise ValueError(f"not an email address: {bad}")
        return value


class Maintenance(_Section):
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
    # Advice needs evidence: no DROP of an unused index before its scan counters have covered this
    # many days of traffic, and no REINDEX of an index smaller than this (PgHero's default: 100 MB).
    min_stats_age_days: Annotated[float, Field(ge=0, le=3650)] = 14
    reindex_min_bytes: Annotated[int, Field(ge=0)] = 100 * 1024 * 1024


class LoadProfile(_Section):
    users: Annotated[int, Field(ge=1)]
    spawn_rate: Annotated[float, Field(gt=0)]
    run_time_s: Annotated[int, Field(ge=5)]
    step_users: Annotated[int, Field(ge=1)] | None = None
    step_seconds: Annotated[int, Field(ge=5)] | None = None
    targets: Targets | None = None


class Regression(_Section):
    """Verdict 2, a run against its profile's history (see `tutormax_ops.regression`)."""

    window_runs: Annotated[int, Field(ge=5, le=1000)] = 50
    robust_runs: Annotated[int, Field(ge=3, le=1000)] = 20
    min_history: Annotated[int, Field(ge=2)] = 3
    robust_z: Annotated[float, Field(gt=0)] = 4.0
    p_value: Annotated[float, Field(gt=0, lt=1)] = 0.01
    permutations: Annotated[int, Field(ge=19, le=10_000)] = 199
    min_relative_change: Annotated[float, Field(ge=0)] = 0.10
    confirm_runs: Annotated[int, Field(ge=1)] = 3


class LoadTest(_Section):
    schedule: Cron = "0 2 * * *"
    host_allowlist: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    max_users: Annotated[int, Field(ge=1)] = 2000
    default_profile: str = "smoke"
    profiles: dict[str, LoadProfile] = Field(
        default_factory=lambda: {"smoke": LoadProfile(users=20, spawn_rate=10, run_time_s=60)}
    )
    think_time_s: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]] = (0.5, 1.5)
    stop_timeout_s: Annotated[int, Field(ge=0, le=600)] = 5
    warmup_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.25
    kill_grace_s: Annotated[float, Field(gt=0, le=600)] = 15
    start_slack_s: Annotated[float, Field(ge=0)] = 60
    run_task_timeout_s: Annotated[int, Field(ge=10)] = 7200
    cpu_saturation_percent: Percent = 90
    max_saturated_fraction: Annotated[float, Field(ge=0, le=1)] = 0.25
    min_endpoint_requests: Annotated[int, Field(ge=1)] = 20
    master_bind_host: str = "127.0.0.1"
    # 0 picks a free port per run (local workers only); remote workers need a fixed one, e.g. 5557.
    master_port: Annotated[int, Field(ge=0, le=65_535)] = 0
    remote_workers: Annotated[int, Field(ge=0)] = 0
    regression: Regression = Regression()

    @model_validator(mode="after")
    def _profiles_are_consistent(self) -> LoadTest:
        if self.default_profile not in self.profiles:
            raise ValueError(
                f"default_profile {self.default_profile!r} is not one of {sorted(self.profiles)}"
            )
        for name, profile in self.profiles.items():
            if profile.users > self.max_users:
                raise ValueError(f"profiles.{name}.users={profile.users} exceeds max_users={self.max_users}")
        return self


class CacheWarm(_Section):
    schedule: Cron = "30 1 * * *"
    top_tutors: Annotated[int, Field(ge=0, le=100_000)] = 200


class Settings(_Section):
    targets: Targets = Targets()
    alerts: Alerts = Alerts()
    collectors: Collectors = Collectors()
    storage: Storage = Storage()
    coordination: Coordination = Coordination()
    notify: Notify = Notify()
    maintenance: Maintenance = Maintenance()
    loadtest: LoadTest = LoadTest()
    cache_warm: CacheWarm = CacheWarm()

    def profile(self, name: str) -> LoadProfile:
        try:
            return self.loadtest.profiles[name]
        except KeyError:
            raise SettingsError(f"loadtest.profiles: no profile named {name!r}") from None

    def targets_for(self, profile: str) -> Targets:
        """The global targets, with the fields a profile sets itself in their place."""
        own = self.profile(profile).targets
        return self.targets.model_copy(update=own.model_dump(exclude_unset=True)) if own else self.targets


def _yaml_values(config_dir: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(config_dir.glob("*.yaml")):
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise SettingsError(f"{path.name}: the top level must be a mapping")
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
        values = _yaml_values(Path(os.environ.get(CONFIG_DIR_ENV) or CONFIG_DIR))
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
