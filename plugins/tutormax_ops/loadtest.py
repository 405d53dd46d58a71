"""Headless Locust load tests of the TutorMax API, from the guard to the verdicts.

The `tutormax_load_test` DAG calls, in order:

1. `plan_from_context`: the run's plan, from the params over the profile. An Asset-triggered run
   (a schema migration finished) is always the plain `smoke` profile.
2. `check_guard`: refuses a host off the allowlist or more users than the cap before any request,
   then asks the target's `/health` and checks that no session holds the shared advisory lock.
3. `loadtest_operator.LoadTestRunOperator` → `execute_run`: locust as a subprocess in a process group of its own,
   with the server-side figures (Redis INFO, pg_stat_statements) taken around its steady state and
   the raw outputs stored under the run's artifacts folder. Kill and timeout stop the whole group.
4. `analyze_run`: validity, verdict 1 (targets), verdict 2 (history, `tutormax_ops.regression`),
   the history rows, `report.html` and the email.
5. `notify_run`, then `enforce_verdict`, which fails the DAG run on anything but a pass.

Locust is never imported here, nor in any Airflow or pytest process: `import locust` gevent-patches
the importing process and deadlocks after `dag.test()`. It runs as `python -m locust`.

The DAG file imports this module while it is parsed, for the operator: everything heavier than the
standard library is imported inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from airflow.sdk.exceptions import AirflowFailException

from tutormax_ops.core.config import LoadTest, Settings, Targets, load_settings
from tutormax_ops.core.conn_ids import API_CONN_ID, DB_CONN_ID, REDIS_CONN_ID, RESULTS_CONN_ID
from tutormax_ops.core.paths import LOCUST_DIR

if TYPE_CHECKING:
    import psutil
    import psycopg
    from airflow.sdk import ObjectStoragePath

    from tutormax_ops.collectors.locust import EndpointMetrics, LocustRun
    from tutormax_ops.collectors.postgres.queries import StatementsSnapshot
    from tutormax_ops.collectors.redis import RedisSample
    from tutormax_ops.regression import Finding, Point, SeriesVerdict


LOCUSTFILE = LOCUST_DIR / "tutormax_locustfile.py"
STRESS_SHAPE = LOCUST_DIR / "stress_shape.py"
PREFIX = "locust"  # every locust output file starts with it: locust_stats.csv, locust.json, locust.html
LOCUST_OUTPUTS = (
    f"{PREFIX}_stats.csv",
    f"{PREFIX}_stats_history.csv",
    f"{PREFIX}_failures.csv",
    f"{PREFIX}_exceptions.csv",
    f"{PREFIX}.json",
    f"{PREFIX}.html",
)
REPORT_FILES = ("report.html", "email.html", "summary.json", "endpoints.csv", "trend.png")
Verdict = Literal["pass", "fail", "regression", "invalid"]

SAMPLE_EVERY_S = 1.0
PROGRESS_EVERY_S = 5.0
HEALTH_TIMEOUT_S = 5.0
# Locust's "current" percentiles cover its last 10 s: a stress step's last row describes that step
# alone once the step has run this long.
LOCUST_CURRENT_WINDOW_S = 10
_LOG_PROBLEM = re.compile(r"/(WARNING|ERROR|CRITICAL)/")
# The load starts when locust (or its master) logs one of these. Its log is written as it happens;
# the history CSV is flushed only every 5 s, too late to time the server-side window by.
_LOAD_STARTED = re.compile(r"Ramping to \d+ users|Shape test starting")


class LoadTestRefused(AirflowFailException):
    """The guard refused the run and says why; retrying cannot change a refusal, so no retry."""


class LoadTestVerdict(AirflowFailException):
    """The run did not pass (target breach, regression or invalid); its email, if `notify` asked for
    one, went out before."""


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPlan:
    profile: str
    host: str  # base URL without a trailing slash, e.g. http://127.0.0.1:8000
    users: int
    spawn_rate: float
    run_time_s: int
    processes: int  # 0: one locust process; N: a master and N worker processes
    notify: str
    trigger: Literal["schedule", "asset", "manual"]
    step_users: int | None = None
    step_seconds: int | None = None

    @property
    def stress(self) -> bool:
        return self.step_users is not None and self.step_seconds is not None

    @property
    def planned_duration_s(self) -> float:
        """The shape decides a stress run's length: whole steps up to `users`."""
        if self.step_users is not None and self.step_seconds is not None:
            return float(math.ceil(self.users / self.step_users) * self.step_seconds)
        return float(self.run_time_s)

    def measure_after_s(self, warmup_fraction: float) -> float:
        """When the server-side window opens, counted from the first user: all users spawned, plus a
        warm-up, but never later than half-way."""
        spawn_s = 0.0 if self.stress else self.users / self.spawn_rate
        return min(spawn_s + warmup_fraction * self.planned_duration_s, self.planned_duration_s / 2)


def resolve_plan(
    settings: Settings, params: Mapping[str, Any], *, default_host: str, trigger: str
) -> RunPlan:
    """Params over the profile's values. An Asset event carries no form: the post-migration check is
    always the plain `smoke` profile against the default host."""
    chosen = (
        {} if trigger == "asset" else {key: value for key, value in params.items() if value not in (None, "")}
    )
    name = "smoke" if trigger == "asset" else chosen.get("profile", settings.loadtest.default_profile)
    profile = settings.profile(name)
    return RunPlan(
        profile=name,
        host=str(chosen.get("host") or default_host).rstrip("/"),
        users=int(chosen.get("users", profile.users)),
        spawn_rate=float(chosen.get("spawn_rate", profile.spawn_rate)),
        run_time_s=int(chosen.get("run_time", profile.run_time_s)),
        processes=int(chosen.get("processes", 0)),
        notify=str(params.get("notify") or "on_problem"),
        trigger=trigger if trigger in ("schedule", "asset") else "manual",  # type: ignore[arg-type]
        step_users=profile.step_users,
        step_seconds=profile.step_seconds,
    )


def api_base_url(conn_id: str = API_CONN_ID) -> str:
    """The `tutormax_api` connection as a base URL (no credentials: load needs none)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    host = conn.host or ""
    if "://" in host:
        return host.rstrip("/")
    netloc = f"[{host}]" if ":" in host else host  # IPv6 literal
    return f"{conn.schema or 'http'}://{netloc}{f':{conn.port}' if conn.port else ''}"


def plan_from_context(context: Mapping[str, Any]) -> dict[str, Any]:
    run_type = context["dag_run"].run_type
    run_type = getattr(run_type, "value", run_type)
    trigger = {"asset_triggered": "asset", "scheduled": "schedule"}.get(str(run_type), "manual")
    params = context["params"]
    default_host = "" if (params.get("host") and trigger != "asset") else api_base_url()
    plan = resolve_plan(load_settings(with_variable=True), params, default_host=default_host, trigger=trigger)
    print(f"plan: {plan}")
    return asdict(plan)


# --- the guard --------------------------------------------------------------------------------


def static_refusals(plan: RunPlan, loadtest: LoadTest) -> list[str]:
    """What can be refused without sending anything anywhere."""
    reasons = []
    parts = urlsplit(plan.host)
    allowed = sorted({host.lower() for host in loadtest.host_allowlist})
    if parts.scheme not in ("http", "https") or (parts.hostname or "").lower() not in allowed:
        reasons.append(f"host {plan.host!r} is not on loadtest.host_allowlist {allowed}")
    if plan.users > loadtest.max_users:
        reasons.append(f"{plan.users} users exceed the cap loadtest.max_users={loadtest.max_users}")
    return reasons


def check_guard(plan_values: Mapping[str, Any]) -> list[str]:
    """Raise `LoadTestRefused` with every reason, or return what was checked (for the log)."""
    from tutormax_ops.core.notify import redact

    settings = load_settings(with_variable=True)
    plan = RunPlan(**plan_values)
    if reasons := static_refusals(plan, settings.loadtest):
        raise LoadTestRefused("load test refused, no request was sent: " + "; ".join(reasons))
    passed = [f"{plan.host} is on the allowlist", f"{plan.users} users within the cap"]
    health = _health_problem(plan.host)
    if health:
        raise LoadTestRefused(redact(f"load test refused, no load was sent: {health}"))
    passed.append(f"GET {plan.host}/health answered ok")
    holder = _advisory_lock_holder(settings)
    if holder is not None:
        raise LoadTestRefused(
            f"load test refused, no load was sent: advisory lock {settings.coordination.advisory_lock_key} is "
            f"held by pid {holder.pid} ({holder.application_name or 'unnamed'}, for {holder.held_for_s:.0f} s): "
            "a migration or maintenance is running"
        )
    passed.append("no session holds the advisory lock")
    for line in passed:
        print(f"guard: {line}")
    return passed


def _health_problem(host: str) -> str | None:
    import requests

    try:
        response = requests.get(f"{host}/health", timeout=HEALTH_TIMEOUT_S)
    except requests.RequestException as error:
        return f"GET {host}/health failed: {type(error).__name__}: {error}"
    try:
        status = response.json().get("status")
    except ValueError:  # a /health that answers plain text: its status code decides
        status = None
    if response.status_code != 200 or status not in (None, "ok"):
        return f"GET {host}/health answered {response.status_code}: {response.text[:200]}"
    return None


def _service_db(settings: Settings, *, read_only: bool) -> psycopg.Connection:
    from tutormax_ops.core.db import collector_session

    return collector_session(DB_CONN_ID, settings, read_only=read_only)


def _advisory_lock_holder(settings: Settings) -> Any:
    from tutormax_ops.core.coordination import lock_holder

    with _service_db(settings, read_only=True) as conn:
        return lock_holder(conn, settings.coordination.advisory_lock_key)


@contextlib.contextmanager
def _holding_advisory_lock(settings: Settings) -> Iterator[None]:
    """Hold the shared lock for the whole load, so no migration or maintenance starts under it; a
    session that took it since the guard looked makes the run fail here, before any load."""
    from tutormax_ops.core.coordination import exclusive

    with (
        _service_db(settings, read_only=False) as conn,
        exclusive(conn, settings.coordination.advisory_lock_key, wait_s=0),
    ):
        yield


# --- running locust ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuSample:
    elapsed_s: float
    role: str  # "locust", "master" or "worker-N"
    pid: int
    cpu_percent: float  # of one core: a gevent process cannot use more than one


@dataclass(frozen=True)
class RunOutcome:
    started_at: datetime
    ended_at: datetime
    exit_codes: dict[str, int | None]
    stopped_by: str | None  # None: locust ended by itself; else why the runner stopped it
    window_opened_s: float | None  # seconds after launch when the server-side window opened
    cpu_samples: tuple[CpuSample, ...] = field(repr=False)


class LocustGroup:
    """locust, or its master and workers, in one process group that signals reach as a whole.

    The first process starts a new group; the others join it. A worker whose master died waits
    60 s for a heartbeat before it quits, so stopping always ends with SIGKILL to the group.
    """

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.pgid: int | None = None
        self.stopped_by: str | None = None
        self._monitors: dict[str, psutil.Process] = {}

    def launch(self, role: str, argv: list[str], *, env: Mapping[str, str], log_path: Path) -> None:
        import psutil

        from tutormax_ops.core.processes import spawn

        # Every process joins the first one's group, so one signal reaches master and workers alike.
        process = spawn(role, argv, log_path=log_path, env=dict(env), process_group=self.pgid or 0).process
        self.pgid = self.pgid or process.pid
        self.processes[role] = process
        monitor = psutil.Process(process.pid)
        monitor.cpu_percent(None)  # the first reading is always 0: prime it now
        self._monitors[role] = monitor

    def running(self) -> bool:
        return any(process.poll() is None for process in self.processes.values())

    def sample_cpu(self, elapsed_s: float) -> list[CpuSample]:
        import psutil

        samples = []
        for role, monitor in self._monitors.items():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                samples.append(CpuSample(round(elapsed_s, 1), role, monitor.pid, monitor.cpu_percent(None)))
        return samples

    def stop(self, reason: str, *, grace_s: float) -> None:
        """SIGINT to the group (locust then writes its HTML report), SIGKILL after `grace_s`."""
        if not self.running():
            return
        self.stopped_by = self.stopped_by or reason
        print(f"stopping locust ({reason}): SIGINT to process group {self.pgid}")
        self._signal(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.running():
            print(f"locust still running after {grace_s:g} s: SIGKILL to process group {self.pgid}")
        self.sweep()

    def sweep(self) -> None:
        """SIGKILL whatever is left in the group and reap our children: nothing may outlive the task."""
        self._signal(signal.SIGKILL)
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)

    def exit_codes(self) -> dict[str, int | None]:
        return {role: process.returncode for role, process in self.processes.items()}

    def _signal(self, signum: int) -> None:
        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signum)


class _Tail:
    """The complete lines appended to a file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def new_lines(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
            self._offset = handle.tell()
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines if line]


class _HistoryTail:
    """The latest aggregate row of `_stats_history.csv` while locust writes it: a row a second,
    flushed every 5 s, so progress lines lag by up to that much."""

    def __init__(self, path: Path) -> None:
        self._tail = _Tail(path)
        self._header: list[str] | None = None
        self.latest: dict[str, str] | None = None

    def poll(self) -> dict[str, str] | None:
        for cells in csv.reader(self._tail.new_lines()):
            if self._header is None:
                self._header = cells
            elif (row := dict(zip(self._header, cells, strict=False))).get("Name") == "Aggregated":
                self.latest = row
        return self.latest


_active_group: LocustGroup | None = None  # what `on_kill` stops; one load test per task process


def stop_active_run(reason: str, *, grace_s: float) -> None:
    if _active_group is not None:
        _active_group.stop(reason, grace_s=grace_s)


def locust_env(plan: RunPlan, loadtest: LoadTest) -> dict[str, str]:
    """The task's environment without Airflow's settings and connections (locust needs no secret),
    plus what the locustfile and the stress shape read."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    low, high = loadtest.think_time_s
    env["TUTORMAX_LOCUST_THINK_TIME"] = f"{low},{high}"
    if plan.step_users is not None and plan.step_seconds is not None:
        env.update(
            TUTORMAX_STRESS_STEP_USERS=str(plan.step_users),
            TUTORMAX_STRESS_STEP_SECONDS=str(plan.step_seconds),
            TUTORMAX_STRESS_MAX_USERS=str(plan.users),
            TUTORMAX_STRESS_SPAWN_RATE=str(plan.spawn_rate),
        )
    return env


def locust_commands(
    plan: RunPlan, loadtest: LoadTest, folder: Path, *, master_port: int
) -> list[tuple[str, list[str]]]:
    """(role, argv) for each process: one `locust`, or a master and `processes` workers."""
    files = f"{LOCUSTFILE},{STRESS_SHAPE}" if plan.stress else str(LOCUSTFILE)
    base = [sys.executable, "-m", "locust", "-f", files]
    # The stress shape sets users and stops the run itself; locust warns about -u/-r/-t next to a shape.
    load = (
        []
        if plan.stress
        else ["-u", str(plan.users), "-r", f"{plan.spawn_rate:g}", "-t", f"{plan.run_time_s}s"]
    )
    test = [
        "--headless",
        "--host", plan.host,
        *load,
        "--csv", str(folder / PREFIX),
        "--csv-full-history",
        "--html", str(folder / f"{PREFIX}.html"),
        "--json-file", str(folder / PREFIX),
        "--exit-code-on-error", "0",
        "--stop-timeout", str(loadtest.stop_timeout_s),
        "--only-summary",
    ]  # fmt: skip
    if plan.processes == 0:
        return [("locust", [*base, *test])]
    expected = plan.processes + loadtest.remote_workers
    master = [
        *base,
        *test,
        "--master",
        "--master-bind-host", loadtest.master_bind_host,
        "--master-bind-port", str(master_port),
        "--expect-workers", str(expected),
        "--expect-workers-max-wait", f"{loadtest.start_slack_s:g}",
    ]  # fmt: skip
    reach = "127.0.0.1" if loadtest.master_bind_host in ("0.0.0.0", "*", "") else loadtest.master_bind_host
    worker = [*base, "--worker", "--master-host", reach, "--master-port", str(master_port)]
    return [("master", master), *((f"worker-{index}", worker) for index in range(1, plan.processes + 1))]


def run_locust(
    plan: RunPlan,
    loadtest: LoadTest,
    folder: Path,
    *,
    on_window_open: Callable[[], None] = lambda: None,
    log: Callable[[str], None] = print,
) -> RunOutcome:
    """Run locust to its end (or to the runner's deadline), logging progress, sampling the CPU of
    its processes and calling `on_window_open` once the steady state has warmed up.

    Any exception raised while it runs (Airflow's execution timeout, a kill) stops the group first.
    """
    from tutormax_ops.core.processes import free_port

    global _active_group
    group = _active_group = LocustGroup()
    env = locust_env(plan, loadtest)
    started_at, launched = datetime.now(UTC), time.monotonic()
    deadline = launched + plan.planned_duration_s + loadtest.start_slack_s + loadtest.stop_timeout_s
    measure_after = plan.measure_after_s(loadtest.warmup_fraction)
    history = _HistoryTail(folder / f"{PREFIX}_stats_history.csv")
    commands = locust_commands(plan, loadtest, folder, master_port=loadtest.master_port or free_port())
    logs = [_Tail(folder / f"{role}.log") for role, _ in commands]
    samples: list[CpuSample] = []
    first_user_at: float | None = None
    window_opened: float | None = None
    next_progress = launched + PROGRESS_EVERY_S
    try:
        for role, argv in commands:
            group.launch(role, argv, env=env, log_path=folder / f"{role}.log")
        log(
            f"locust started: {plan.users} users at {plan.spawn_rate:g}/s for {plan.planned_duration_s:g} s against {plan.host}"
        )
        while group.running():
            now = time.monotonic()
            if now >= deadline:
                group.stop(
                    f"still running {now - launched:.0f} s after launch", grace_s=loadtest.kill_grace_s
                )
                break
            tick = group.sample_cpu(now - launched)
            samples.extend(tick)
            for tail in logs:
                for line in tail.new_lines():
                    if first_user_at is None and _LOAD_STARTED.search(line):
                        first_user_at = now
                    if _LOG_PROBLEM.search(line):
                        log(f"locust: {line}")
            if window_opened is None and first_user_at is not None and now - first_user_at >= measure_after:
                on_window_open()
                window_opened = now - launched
                log(f"server-side window opened {window_opened:.0f} s after launch")
            if now >= next_progress:
                log(_progress(history.poll(), now - launched, plan, tick))
                next_progress += PROGRESS_EVERY_S
            time.sleep(SAMPLE_EVERY_S)
    except BaseException as error:
        group.stop(f"interrupted by {type(error).__name__}", grace_s=loadtest.kill_grace_s)
        raise
    finally:
        group.sweep()
        _active_group = None
    return RunOutcome(
        started_at=started_at,
        ended_at=datetime.now(UTC),
        exit_codes=group.exit_codes(),
        stopped_by=group.stopped_by,
        window_opened_s=window_opened,
        cpu_samples=tuple(samples),
    )


def _progress(
    row: Mapping[str, str] | None, elapsed_s: float, plan: RunPlan, tick: Sequence[CpuSample]
) -> str:
    cpu = max((sample.cpu_percent for sample in tick), default=0.0)
    if row is None:
        return f"locust {elapsed_s:.0f}/{plan.planned_duration_s:g} s: starting (generator CPU {cpu:.0f}%)"
    requests, failures = int(row["Total Request Count"]), int(row["Total Failure Count"])
    return (
        f"locust {elapsed_s:.0f}/{plan.planned_duration_s:g} s: {row['User Count']} users, "
        f"{float(row['Requests/s']):.1f} req/s, p95 {row['95%']} ms, {requests} requests, "
        f"{failures} failures, generator CPU {cpu:.0f}%"
    )


# --- server-side figures around the run ---------------------------------------------------------


@dataclass(frozen=True)
class ServerSnapshot:
    taken_at: datetime
    redis: RedisSample | None
    statements: StatementsSnapshot | None
    errors: tuple[str, ...]


def take_server_snapshot(settings: Settings) -> ServerSnapshot:
    """Redis INFO counters and pg_stat_statements now. A server that does not answer is noted, not
    fatal: the load test's own figures still stand."""
    from tutormax_ops.collectors.postgres.queries import statements_snapshot
    from tutormax_ops.collectors.redis import take_sample

    errors = []
    redis_sample = statements = None
    try:
        client = _redis_client()
        try:
            redis_sample = take_sample(client)
        finally:
            client.close()
    except Exception as error:  # reported with the run
        errors.append(_describe_error("Redis", error))
    try:
        with _service_db(settings, read_only=True) as conn:
            statements = statements_snapshot(conn)
    except Exception as error:  # reported with the run
        errors.append(_describe_error("PostgreSQL", error))
    return ServerSnapshot(datetime.now(UTC), redis_sample, statements, tuple(errors))


def server_metrics(start: ServerSnapshot, settings: Settings, host: str, *, window: str) -> dict[str, Any]:
    """Cache and query figures from `start` to now, and the service's own summary."""
    from tutormax_ops.collectors.postgres.queries import query_stats, statements_snapshot
    from tutormax_ops.collectors.redis import cache_stats

    errors = list(start.errors)
    cache = queries = None
    if start.redis is not None:
        try:
            client = _redis_client()
            try:
                cache = cache_stats(
                    client,
                    previous=start.redis,
                    patterns=settings.collectors.redis_key_patterns,
                    scan_limit=settings.collectors.redis_scan_limit,
                )
            finally:
                client.close()
        except Exception as error:  # reported with the run
            errors.append(_describe_error("Redis", error))
    if start.statements is not None:
        try:
            with _service_db(settings, read_only=True) as conn:
                queries = query_stats(
                    start.statements, statements_snapshot(conn), min_duration_ms=settings.alerts.slow_query_ms
                )
        except Exception as error:  # reported with the run
            errors.append(_describe_error("PostgreSQL", error))
    return {
        "window": window,
        "window_started_at": start.taken_at,
        "cache": asdict(cache) if cache else None,
        "cache_hit_rate": cache.window_hit_rate_percent if cache else None,
        "queries": asdict(queries) if queries else None,
        "query_p95_ms": queries.p95_time_ms if queries else None,
        "slow_query_rate": queries.slow_query_rate if queries else None,
        "service_summary": _service_summary(host, errors),
        "errors": errors,
    }


def _redis_client() -> Any:
    from airflow.providers.redis.hooks.redis import RedisHook

    return RedisHook(redis_conn_id=REDIS_CONN_ID).get_conn()


def _service_summary(host: str, errors: list[str]) -> dict[str, Any] | None:
    """The service's own `/api/performance/summary`, where it has one."""
    import requests

    try:
        response = requests.get(f"{host}/api/performance/summary", timeout=10)
        response.raise_for_status()
        return response.json()
    except (requests.RequestException, ValueError) as error:
        errors.append(_describe_error("service summary", error))
        return None


def _describe_error(what: str, error: BaseException) -> str:
    from tutormax_ops.core.notify import redact

    return redact(f"{what}: {type(error).__name__}: {error}")[:500]


# --- the run task -------------------------------------------------------------------------------


def execute_run(plan_values: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Run the load with the server-side window around its steady state; store every raw output."""
    from tutormax_ops.core import reports
    from tutormax_ops.core.storage import run_artifacts_dir

    settings = load_settings(with_variable=True)
    plan = RunPlan(**plan_values)
    ti = context["ti"]
    artifacts = run_artifacts_dir(settings.storage.artifacts_uri(), ti.dag_id, ti.run_id)
    with tempfile.TemporaryDirectory(prefix="tutormax-locust-") as tmp, _holding_advisory_lock(settings):
        folder = Path(tmp)
        snapshots = {"run": take_server_snapshot(settings)}
        started_at = datetime.now(UTC)
        try:
            outcome = run_locust(
                plan,
                settings.loadtest,
                folder,
                on_window_open=lambda: snapshots.setdefault("steady state", take_server_snapshot(settings)),
            )
        except BaseException as error:
            _store_files(folder, artifacts)
            _record_interrupted_run(plan, settings, ti.dag_id, ti.run_id, started_at, error, artifacts)
            raise
        window = "steady state" if "steady state" in snapshots else "run"
        metrics = server_metrics(snapshots[window], settings, plan.host, window=window)
        _store_files(folder, artifacts)
        (artifacts / "server_metrics.json").write_text(reports.to_json(metrics))
        (artifacts / "cpu_samples.csv").write_text(reports.to_csv([asdict(s) for s in outcome.cpu_samples]))
        outcome_values = {key: value for key, value in asdict(outcome).items() if key != "cpu_samples"}
        (artifacts / "outcome.json").write_text(reports.to_json(outcome_values))
    print(
        f"run stored under {artifacts}: exit codes {outcome.exit_codes}, stopped by {outcome.stopped_by or 'nobody'}"
    )
    return {
        "artifacts_uri": str(artifacts),
        "outcome": json.loads(reports.to_json(outcome_values)),
        "server": {
            key: metrics[key]
            for key in ("window", "cache_hit_rate", "query_p95_ms", "slow_query_rate", "errors")
        },
    }


def _store_files(folder: Path, artifacts: ObjectStoragePath) -> None:
    for path in sorted(folder.iterdir()):
        if path.is_file():
            (artifacts / path.name).write_bytes(path.read_bytes())


def _record_interrupted_run(
    plan: RunPlan,
    settings: Settings,
    dag_id: str,
    run_id: str,
    started_at: datetime,
    error: BaseException,
    artifacts: ObjectStoragePath,
) -> None:
    """A killed or timed-out run goes into the history as invalid: it must never count as a pass."""
    reason = f"the run was interrupted ({type(error).__name__}) and locust's process group stopped"
    try:
        _store_run_rows(
            settings,
            _run_row(
                plan,
                dag_id,
                run_id,
                started_at,
                artifacts,
                valid=False,
                invalid_reason=reason,
                verdict="invalid",
            ),
            [],
        )
    except Exception as storing_error:  # the interruption is the error to raise, not this one
        print(f"could not record the interrupted run: {_describe_error('results database', storing_error)}")


# --- analysis ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetCheck:
    scope: str  # an endpoint, or "all endpoints"
    metric: str
    value: float | None
    target: float
    comparison: Literal["<", ">", "≥"]
    unit: str
    status: Literal["pass", "fail", "n/a"]
    note: str = ""


@dataclass(frozen=True)
class LoadStep:
    """One step of a stress run, measured after Locust's 10 s window has filled with it."""

    users: int
    seconds: float
    rps: float
    error_rate: float | None
    p95_ms: float | None
    meets_targets: bool


def load_steps(history_csv: Path, targets: Targets) -> list[LoadStep]:
    """The stress profile's steps from the full history: throughput from the cumulative counts over
    the settled part of each step, p95 from Locust's current window at the step's end."""
    with history_csv.open(newline="") as handle:
        rows = [
            row
            for row in csv.DictReader(handle)
            if row["Name"] == "Aggregated" and int(row["User Count"]) > 0
        ]
    steps = []
    for users, group in _runs_of(rows, key=lambda row: int(row["User Count"])):
        first = int(group[0]["Timestamp"])
        settled = [
            row
            for row in group
            if int(row["Timestamp"]) - first >= min(LOCUST_CURRENT_WINDOW_S, len(group) // 3)
        ]
        if len(settled) < 2:
            continue
        start, end = settled[0], settled[-1]
        seconds = int(end["Timestamp"]) - int(start["Timestamp"])
        requests = int(end["Total Request Count"]) - int(start["Total Request Count"])
        failures = int(end["Total Failure Count"]) - int(start["Total Failure Count"])
        error_rate = 100.0 * failures / requests if requests else None
        p95 = float(end["95%"]) if end["95%"] not in ("", "N/A") else None
        meets = (
            p95 is not None and p95 < targets.p95_api_ms and (error_rate or 0.0) < targets.error_rate_percent
        )
        steps.append(LoadStep(users, float(seconds), requests / seconds, error_rate, p95, meets))
    return steps


def knee(steps: Sequence[LoadStep]) -> LoadStep | None:
    """The highest steady throughput at which p95 and the error rate still meet the targets."""
    return max((step for step in steps if step.meets_targets), key=lambda step: step.rps, default=None)


def _runs_of(
    rows: Sequence[dict[str, str]], *, key: Callable[[dict[str, str]], int]
) -> list[tuple[int, list[dict[str, str]]]]:
    groups: list[tuple[int, list[dict[str, str]]]] = []
    for row in rows:
        if groups and groups[-1][0] == key(row):
            groups[-1][1].append(row)
        else:
            groups.append((key(row), [row]))
    return groups


def check_targets(
    *,
    aggregate: EndpointMetrics | None,
    endpoints: Sequence[EndpointMetrics],
    cache_hit_rate: float | None,
    query_p95_ms: float | None,
    targets: Targets,
    min_endpoint_requests: int,
    stress_knee: LoadStep | None = None,
    stress: bool = False,
    unmeasured: Mapping[str, str] | None = None,
) -> list[TargetCheck]:
    """The seed's table, on the aggregate and on each endpoint with enough requests to mean something.
    A stress run is judged at its knee: beyond it, missing the targets is the point of the test."""
    from tutormax_ops.regression import AGGREGATE

    why = unmeasured or {}
    checks: list[TargetCheck] = []
    if stress:
        knee_rps = stress_knee.rps if stress_knee else None
        at = f"at {stress_knee.users} users" if stress_knee else ""
        missed = "no step met the p95 and error-rate targets"
        checks.append(
            _check(
                AGGREGATE, "knee_rps", knee_rps, targets.throughput_rps, "≥", "req/s", note=at, missing=missed
            )
        )
    elif aggregate is not None:
        checks += [
            _check(AGGREGATE, "p95_ms", aggregate.p95_ms, targets.p95_api_ms, "<", "ms"),
            _check(
                AGGREGATE,
                "rps",
                aggregate.steady_rps,
                targets.throughput_rps,
                "≥",
                "req/s",
                note="steady state",
            ),
            _check(
                AGGREGATE, "error_rate", aggregate.error_rate_percent, targets.error_rate_percent, "<", "%"
            ),
        ]
    checks += [
        _check(
            AGGREGATE,
            "cache_hit_rate",
            cache_hit_rate,
            targets.cache_hit_rate_percent,
            ">",
            "%",
            missing=why.get("cache_hit_rate", "not measured"),
        ),
        _check(
            AGGREGATE,
            "query_p95_ms",
            query_p95_ms,
            targets.p95_query_ms,
            "<",
            "ms",
            note="estimate",
            missing=why.get("query_p95_ms", "not measured"),
        ),
    ]
    if not stress:
        for endpoint in endpoints:
            name = endpoint_name(endpoint)
            if endpoint.requests < min_endpoint_requests:
                few = f"only {endpoint.requests} requests"
                checks.append(_check(name, "p95_ms", None, targets.p95_api_ms, "<", "ms", missing=few))
                continue
            checks += [
                _check(name, "p95_ms", endpoint.p95_ms, targets.p95_api_ms, "<", "ms"),
                _check(name, "error_rate", endpoint.error_rate_percent, targets.error_rate_percent, "<", "%"),
            ]
    return checks


def _check(
    scope: str,
    metric: str,
    value: float | None,
    target: float,
    comparison: Literal["<", ">", "≥"],
    unit: str,
    *,
    note: str = "",
    missing: str = "not measured",
) -> TargetCheck:
    if value is None:
        return TargetCheck(scope, metric, value, target, comparison, unit, "n/a", missing)
    if metric in ("rps", "knee_rps") and target <= 0:
        return TargetCheck(scope, metric, value, target, comparison, unit, "n/a", "no throughput target")
    met = {"<": value < target, ">": value > target, "≥": value >= target}[comparison]
    return TargetCheck(scope, metric, value, target, comparison, unit, "pass" if met else "fail", note)


def endpoint_name(endpoint: EndpointMetrics) -> str:
    return f"{endpoint.method} {endpoint.name}".strip()


@dataclass(frozen=True)
class Analysis:
    """Everything the report, the email and the history rows are made of."""

    plan: RunPlan
    run_id: str
    started_at: datetime
    valid: bool
    invalid_reasons: tuple[str, ...]
    run: LocustRun | None
    checks: tuple[TargetCheck, ...]
    steps: tuple[LoadStep, ...]
    knee: LoadStep | None
    regression: tuple[SeriesVerdict, ...]
    history: tuple[dict[str, Any], ...]  # earlier runs, oldest first, with their endpoint figures
    server: dict[str, Any]
    outcome: dict[str, Any]

    @property
    def targets_verdict(self) -> Literal["pass", "fail"]:
        return "fail" if any(check.status == "fail" for check in self.checks) else "pass"

    @property
    def findings(self) -> list[Finding]:
        """Largest move first, counted in steps of each metric's `min_abs_change`, so the email's subject
        names what moved most. Relative change would rank a query p95 going from 1.6 to 3.9 ms
        (+149%) above an endpoint slowed by 150 ms from a 100 ms baseline (+150% or less)."""
        from tutormax_ops.regression import METRICS

        found = [finding for verdict in self.regression for finding in verdict.findings]
        return sorted(
            found, key=lambda finding: -abs(finding.change) / METRICS[finding.metric].min_abs_change
        )

    @property
    def regression_verdict(self) -> Literal["regression", "ok", "insufficient history", "not judged"]:
        if not self.valid:
            return "not judged"
        if self.findings:
            return "regression"
        if any(verdict.status == "insufficient history" for verdict in self.regression):
            return "insufficient history"
        return "ok"

    @property
    def verdict(self) -> Verdict:
        if not self.valid:
            return "invalid"
        if self.targets_verdict == "fail":
            return "fail"
        return "regression" if self.findings else "pass"

    def headline(self) -> str:
        """One line for the email subject: the verdict and its first reason."""
        problems = [
            *(f"invalid: {reason}" for reason in self.invalid_reasons),
            *(
                f"{check.scope} {check.metric} {check.value:.1f} {check.unit} misses {check.comparison} {check.target:g}"
                for check in self.checks
                if check.status == "fail" and check.value is not None
            ),
            *(finding.describe() for finding in self.findings),
        ]
        label = {"pass": "PASS", "fail": "TARGET BREACH", "regression": "REGRESSION", "invalid": "INVALID"}
        words = [label[self.verdict]]
        if self.valid and self.findings and self.verdict == "fail":
            words.append("+ REGRESSION")
        return " ".join(words) + (f": {problems[0]}" if problems else "")


def analyze_run(
    plan_values: Mapping[str, Any], run_info: Mapping[str, Any], context: Mapping[str, Any]
) -> dict[str, Any]:
    """Judge the stored run, upsert its history rows, then write report.html and email.html."""
    from airflow.sdk import ObjectStoragePath

    settings = load_settings(with_variable=True)
    plan = RunPlan(**plan_values)
    ti = context["ti"]
    artifacts = ObjectStoragePath(run_info["artifacts_uri"])
    with tempfile.TemporaryDirectory(prefix="tutormax-analysis-") as tmp:
        analysis = judge(plan, ti.run_id, run_info, artifacts, Path(tmp), settings, dag_id=ti.dag_id)
    row = _run_row(
        plan,
        ti.dag_id,
        ti.run_id,
        analysis.started_at,
        artifacts,
        valid=analysis.valid,
        invalid_reason="; ".join(analysis.invalid_reasons) or None,
        verdict=analysis.verdict,
        analysis=analysis,
    )
    _store_run_rows(settings, row, _endpoint_rows(analysis, ti.dag_id))
    _write_reports(analysis, artifacts, settings)
    print(f"verdict {analysis.verdict}: {analysis.headline()}")
    return {
        "verdict": analysis.verdict,
        "headline": analysis.headline(),
        "notify": plan.notify,
        "profile": plan.profile,
        "artifacts_uri": str(artifacts),
    }


def judge(
    plan: RunPlan,
    run_id: str,
    run_info: Mapping[str, Any],
    artifacts: ObjectStoragePath,
    scratch: Path,
    settings: Settings,
    *,
    dag_id: str,
) -> Analysis:
    from tutormax_ops.collectors.locust import parse_run, validate_run
    from tutormax_ops.regression import analyze_history

    for name in (*LOCUST_OUTPUTS, *(f"{role}.log" for role in ("locust", "master"))):
        source = artifacts / name
        if source.exists():
            (scratch / name).write_bytes(source.read_bytes())
    outcome = run_info["outcome"]
    cpu = _busiest_cpu(artifacts / "cpu_samples.csv")
    targets = settings.targets_for(plan.profile)
    log_text = "".join(path.read_text(errors="replace") for path in scratch.glob("*.log"))
    reasons: list[str] = []
    run = None
    if (scratch / f"{PREFIX}.json").exists():
        run = parse_run(
            csv_prefix=scratch / PREFIX,
            json_path=scratch / f"{PREFIX}.json",
            html_path=scratch / f"{PREFIX}.html",
            log_text=log_text,
        )
        validity = validate_run(
            run,
            planned_duration_s=plan.planned_duration_s,
            cpu_samples=cpu,
            cpu_saturation_percent=settings.loadtest.cpu_saturation_percent,
            max_saturated_fraction=settings.loadtest.max_saturated_fraction,
        )
        reasons += validity.reasons
    else:
        reasons.append("locust wrote no JSON results: it did not start or was killed")
    if outcome["stopped_by"]:
        reasons.append(f"the runner stopped locust: {outcome['stopped_by']}")
    failed_exits = {role: code for role, code in outcome["exit_codes"].items() if code not in (0, None)}
    if failed_exits:
        reasons.append(f"locust exited with {failed_exits} (see the locust log)")
    steps = load_steps(scratch / f"{PREFIX}_stats_history.csv", targets) if plan.stress and run else []
    stress_knee = knee(steps)
    server = run_info["server"]
    server_details = json.loads((artifacts / "server_metrics.json").read_text())
    checks = check_targets(
        aggregate=run.aggregate if run else None,
        endpoints=run.endpoints if run else (),
        cache_hit_rate=server["cache_hit_rate"],
        query_p95_ms=server["query_p95_ms"],
        targets=targets,
        min_endpoint_requests=settings.loadtest.min_endpoint_requests,
        stress_knee=stress_knee,
        stress=plan.stress,
        unmeasured=_unmeasured(server_details),
    )
    started_at = datetime.fromisoformat(outcome["started_at"])
    history = _load_history(settings, plan, dag_id, run_id)
    valid = not reasons
    regression = ()
    if valid and run is not None:
        current = _current_values(run, server, stress_knee, settings.loadtest.min_endpoint_requests)
        series = build_series(history, current, run_id, started_at)
        regression = tuple(analyze_history(series, settings.loadtest.regression))
    return Analysis(
        plan=plan,
        run_id=run_id,
        started_at=started_at,
        valid=valid,
        invalid_reasons=tuple(reasons),
        run=run,
        checks=tuple(checks),
        steps=tuple(steps),
        knee=stress_knee,
        regression=regression,
        history=tuple(history),
        server=server_details,
        outcome=outcome,
    )


def _unmeasured(server: Mapping[str, Any]) -> dict[str, str]:
    """Why a server-side figure is missing, in the words of its collector."""
    reasons = {}
    cache, queries = server.get("cache"), server.get("queries")
    if server.get("cache_hit_rate") is None:
        reasons["cache_hit_rate"] = (
            (cache or {}).get("error")
            or (cache or {}).get("window_note")
            or "; ".join(server["errors"])
            or "no lookups"
        )
    if server.get("query_p95_ms") is None:
        reasons["query_p95_ms"] = (
            f"{queries['reason']}: {queries['fix']}"
            if queries and queries.get("reason")
            else "; ".join(server["errors"])
        ) or "no queries"
    return reasons


def _busiest_cpu(samples_csv: ObjectStoragePath) -> list[float]:
    if not samples_csv.exists():
        return []
    busiest: dict[str, float] = {}
    for row in csv.DictReader(samples_csv.read_text().splitlines()):
        busiest[row["elapsed_s"]] = max(busiest.get(row["elapsed_s"], 0.0), float(row["cpu_percent"]))
    return list(busiest.values())


def _current_values(
    run: LocustRun, server: Mapping[str, Any], stress_knee: LoadStep | None, min_requests: int
) -> dict[str, dict[str, float | None]]:
    """This run's values per scope and metric, as the history stores them."""
    from tutormax_ops.regression import AGGREGATE

    values: dict[str, dict[str, float | None]] = {
        AGGREGATE: {
            "p95_ms": run.aggregate.p95_ms,
            "error_rate": run.aggregate.error_rate_percent,
            "rps": run.aggregate.steady_rps,
            "cache_hit_rate": server["cache_hit_rate"],
            "query_p95_ms": server["query_p95_ms"],
            "knee_rps": stress_knee.rps if stress_knee else None,
        }
    }
    for endpoint in run.endpoints:
        if endpoint.requests >= min_requests:  # too few requests give a p95 that is noise
            values[endpoint_name(endpoint)] = {
                "p95_ms": endpoint.p95_ms,
                "error_rate": endpoint.error_rate_percent,
            }
    return values


def build_series(
    history: Sequence[Mapping[str, Any]],
    current: Mapping[str, Mapping[str, float | None]],
    run_id: str,
    started_at: datetime,
) -> dict[tuple[str, str], list[Point]]:
    """One series per (scope, metric) the current run has a value for: history oldest first, this run last."""
    from tutormax_ops.regression import AGGREGATE, Point

    series: dict[tuple[str, str], list[Point]] = {}
    for scope, metrics in current.items():
        for metric, value in metrics.items():
            if value is None:
                continue
            points = [
                Point(
                    past["run_id"],
                    past["started_at"],
                    past.get(metric) if scope == AGGREGATE else past["endpoints"].get(scope, {}).get(metric),
                )
                for past in history
            ]
            series[(scope, metric)] = [*points, Point(run_id, started_at, value)]
    return series


# --- history rows -------------------------------------------------------------------------------


@contextlib.contextmanager
def _results_db(settings: Settings) -> Iterator[psycopg.Connection]:
    from tutormax_ops.core.db import collector_session
    from tutormax_ops.core.storage import ensure_results_schema

    with collector_session(RESULTS_CONN_ID, settings, read_only=False) as conn:
        ensure_results_schema(conn, settings.storage.results_schema)
        yield conn


def _load_history(settings: Settings, plan: RunPlan, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Earlier valid runs comparable with this one (same DAG, profile and user count), oldest first,
    each with its endpoints' figures under "endpoints"."""
    from psycopg.rows import dict_row

    from tutormax_ops.core.db import load_sql

    schema = settings.storage.results_schema
    with _results_db(settings) as conn, conn.cursor(row_factory=dict_row) as cursor:
        params = {"dag_id": dag_id, "profile": plan.profile, "users": plan.users, "run_id": run_id}
        cursor.execute(
            load_sql("tutormax_load_test/history_runs.sql", schema=schema),
            {**params, "limit": settings.loadtest.regression.window_runs},
        )
        runs = list(reversed(cursor.fetchall()))
        cursor.execute(
            load_sql("tutormax_load_test/history_endpoints.sql", schema=schema),
            {"dag_id": dag_id, "run_ids": [run["run_id"] for run in runs]},
        )
        endpoints: dict[str, dict[str, dict[str, Any]]] = {}
        for row in cursor.fetchall():
            endpoints.setdefault(row["run_id"], {})[row["endpoint"]] = row
    return [{**run, "endpoints": endpoints.get(run["run_id"], {})} for run in runs]


def _run_row(
    plan: RunPlan,
    dag_id: str,
    run_id: str,
    started_at: datetime,
    artifacts: ObjectStoragePath,
    *,
    valid: bool,
    invalid_reason: str | None,
    verdict: str,
    analysis: Analysis | None = None,
) -> dict[str, Any]:
    from psycopg.types.json import Jsonb

    from tutormax_ops.core.notify import redact

    aggregate = analysis.run.aggregate if analysis and analysis.run else None
    server = analysis.server if analysis else {}
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "profile": plan.profile,
        "started_at": started_at,
        "duration_s": analysis.run.duration_s if analysis and analysis.run else None,
        "host": redact(plan.host),
        "users": plan.users,
        "spawn_rate": plan.spawn_rate,
        "planned_duration_s": plan.planned_duration_s,
        "processes": plan.processes,
        "valid": valid,
        "invalid_reason": invalid_reason,
        "requests": aggregate.requests if aggregate else None,
        "failures": aggregate.failures if aggregate else None,
        "error_rate": aggregate.error_rate_percent if aggregate else None,
        "rps": aggregate.steady_rps if aggregate else None,
        "p50_ms": aggregate.p50_ms if aggregate else None,
        "p95_ms": aggregate.p95_ms if aggregate else None,
        "p99_ms": aggregate.p99_ms if aggregate else None,
        "cache_hit_rate": server.get("cache_hit_rate"),
        "query_p95_ms": server.get("query_p95_ms"),
        "slow_query_rate": server.get("slow_query_rate"),
        "knee_rps": analysis.knee.rps if analysis and analysis.knee else None,
        "knee_users": analysis.knee.users if analysis and analysis.knee else None,
        "verdict": verdict,
        "targets_verdict": analysis.targets_verdict if analysis else None,
        "regression_verdict": analysis.regression_verdict if analysis else None,
        "findings": Jsonb([_finding_values(finding) for finding in analysis.findings] if analysis else []),
        "artifacts_uri": str(artifacts),
    }


def _finding_values(finding: Finding) -> dict[str, Any]:
    values = asdict(finding)
    values["since_started_at"] = finding.since_started_at.isoformat()
    values["z"] = None if finding.z is None or math.isinf(finding.z) else finding.z
    return values


def _endpoint_rows(analysis: Analysis, dag_id: str) -> list[dict[str, Any]]:
    if analysis.run is None:
        return []
    return [
        {
            "dag_id": dag_id,
            "run_id": analysis.run_id,
            "endpoint": endpoint_name(endpoint),
            "requests": endpoint.requests,
            "failures": endpoint.failures,
            "error_rate": endpoint.error_rate_percent,
            "rps": endpoint.steady_rps,
            "p50_ms": endpoint.p50_ms,
            "p95_ms": endpoint.p95_ms,
            "p99_ms": endpoint.p99_ms,
        }
        for endpoint in analysis.run.endpoints
    ]


def _store_run_rows(settings: Settings, run_row: dict[str, Any], endpoint_rows: list[dict[str, Any]]) -> None:
    """One row per run and one per endpoint, upserted: a rerun of the DAG run replaces them."""
    from tutormax_ops.core.storage import replace_run_rows, upsert_rows

    schema = settings.storage.results_schema
    with _results_db(settings) as conn:
        upsert_rows(conn, schema, "loadtest_runs", [run_row], key=("dag_id", "run_id"))
        replace_run_rows(
            conn,
            schema,
            "loadtest_endpoints",
            endpoint_rows,
            dag_id=run_row["dag_id"],
            run_id=run_row["run_id"],
            key=("dag_id", "run_id", "endpoint"),
        )


# --- report, email, verdict ---------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointComparison:
    endpoint: str
    requests: int
    p50_ms: float | None
    p95_ms: float | None
    baseline_p95_ms: float | None
    p95_change: float | None  # relative
    error_rate: float | None
    baseline_error_rate: float | None
    rps: float | None
    status: str


def endpoint_comparisons(analysis: Analysis, baseline_runs: int) -> list[EndpointComparison]:
    """Each endpoint against the median of its last `baseline_runs` history values (the robust
    rule's reference), judged or not."""
    import statistics

    if analysis.run is None:
        return []
    judged = {(verdict.scope, verdict.metric): verdict.status for verdict in analysis.regression}

    def baseline(name: str, metric: str) -> float | None:
        values = [run["endpoints"][name][metric] for run in analysis.history if name in run["endpoints"]]
        values = [value for value in values if value is not None][-baseline_runs:]
        return statistics.median(values) if values else None

    rows = []
    for endpoint in analysis.run.endpoints:
        name = endpoint_name(endpoint)
        base_p95 = baseline(name, "p95_ms")
        statuses = {judged.get((name, "p95_ms")), judged.get((name, "error_rate"))}
        failing = any(check.scope == name and check.status == "fail" for check in analysis.checks)
        if failing:
            statuses.add("target missed")
        # The worst that applies: a regression, a missed target, then what the history said.
        status = next(
            (
                name
                for name in ("regression", "target missed", "ok", "insufficient history")
                if name in statuses
            ),
            "not judged",
        )
        rows.append(
            EndpointComparison(
                endpoint=name,
                requests=endpoint.requests,
                p50_ms=endpoint.p50_ms,
                p95_ms=endpoint.p95_ms,
                baseline_p95_ms=base_p95,
                p95_change=(endpoint.p95_ms - base_p95) / base_p95
                if base_p95 and endpoint.p95_ms is not None
                else None,
                error_rate=endpoint.error_rate_percent,
                baseline_error_rate=baseline(name, "error_rate"),
                rps=endpoint.steady_rps,
                status=status,
            )
        )
    return rows


def trend_chart(analysis: Analysis) -> bytes:
    """p95 per run: the aggregate, and every endpoint that regressed (else the three busiest)."""
    from tutormax_ops.core import reports
    from tutormax_ops.regression import AGGREGATE

    runs = [
        *analysis.history,
        {"run_id": analysis.run_id, "started_at": analysis.started_at, **_current_row(analysis)},
    ]
    scopes = list(dict.fromkeys(finding.scope for finding in analysis.findings if finding.scope != AGGREGATE))
    if not scopes and analysis.run:
        scopes = [endpoint_name(e) for e in sorted(analysis.run.endpoints, key=lambda e: -e.requests)[:3]]
    series = {
        f"{scope} p95": [(run["started_at"], run["endpoints"].get(scope, {}).get("p95_ms")) for run in runs]
        for scope in scopes
    }
    series = {AGGREGATE + " p95": [(run["started_at"], run.get("p95_ms")) for run in runs], **series}
    return reports.line_chart_png(
        series,
        title=f"p95 per run: profile {analysis.plan.profile}, {analysis.plan.users} users",
        ylabel="ms",
    )


def _current_row(analysis: Analysis) -> dict[str, Any]:
    if analysis.run is None:
        return {"p95_ms": None, "endpoints": {}}
    return {
        "p95_ms": analysis.run.aggregate.p95_ms,
        "endpoints": {endpoint_name(e): {"p95_ms": e.p95_ms} for e in analysis.run.endpoints},
    }


def cpu_chart(analysis: Analysis, samples_csv: ObjectStoragePath) -> bytes | None:
    from tutormax_ops.core import reports

    if not samples_csv.exists():
        return None
    series: dict[str, list[tuple[float, float]]] = {}
    for row in csv.DictReader(samples_csv.read_text().splitlines()):
        series.setdefault(row["role"], []).append((float(row["elapsed_s"]), float(row["cpu_percent"])))
    return (
        reports.line_chart_png(series, title="Load generator CPU (% of one core)", ylabel="%")
        if series
        else None
    )


def _write_reports(analysis: Analysis, artifacts: ObjectStoragePath, settings: Settings) -> None:
    from tutormax_ops.collectors.locust import PERCENTILE_ROUNDING
    from tutormax_ops.core import reports
    from tutormax_ops.regression import METRICS

    trend = trend_chart(analysis)
    cpu = cpu_chart(analysis, artifacts / "cpu_samples.csv")
    comparisons = endpoint_comparisons(analysis, settings.loadtest.regression.robust_runs)
    context = {
        "analysis": analysis,
        "plan": analysis.plan,
        "targets": settings.targets_for(analysis.plan.profile),
        "comparisons": comparisons,
        "rounding_note": PERCENTILE_ROUNDING,
        "labels": {name: spec.label for name, spec in METRICS.items()},
        "cpu_saturation": settings.loadtest.cpu_saturation_percent,
        "artifacts_uri": str(artifacts),
        "files": sorted({path.name for path in artifacts.iterdir()} | set(REPORT_FILES)),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (artifacts / "trend.png").write_bytes(trend)
    (artifacts / "report.html").write_text(
        reports.render(
            "loadtest_report.html",
            **context,
            trend_src=reports.data_uri_png(trend),
            cpu_src=reports.data_uri_png(cpu) if cpu else None,
        )
    )
    (artifacts / "email.html").write_text(
        reports.render("loadtest_email.html", **context, trend_src="cid:trend.png")
    )
    summary = {
        "verdict": analysis.verdict,
        "headline": analysis.headline(),
        "plan": asdict(analysis.plan),
        "valid": analysis.valid,
        "invalid_reasons": list(analysis.invalid_reasons),
        "targets_verdict": analysis.targets_verdict,
        "regression_verdict": analysis.regression_verdict,
        "checks": [asdict(check) for check in analysis.checks],
        "findings": [_finding_values(finding) for finding in analysis.findings],
        "aggregate": asdict(analysis.run.aggregate) if analysis.run else None,
        "endpoints": [asdict(row) for row in comparisons],
        "steps": [asdict(step) for step in analysis.steps],
        "knee": asdict(analysis.knee) if analysis.knee else None,
        "server": {
            key: analysis.server.get(key)
            for key in ("window", "cache_hit_rate", "query_p95_ms", "slow_query_rate")
        },
        "percentile_rounding": PERCENTILE_ROUNDING,
    }
    (artifacts / "summary.json").write_text(reports.to_json(summary))
    (artifacts / "endpoints.csv").write_text(reports.to_csv([asdict(row) for row in comparisons]))


def should_notify(notify: str, verdict: str) -> bool:
    return notify == "always" or (notify == "on_problem" and verdict != "pass")


def notify_run(result: Mapping[str, Any]) -> bool:
    """Email the stored email.html, the trend chart inline and Locust's report attached, if the
    `notify` param asks for it. The history rows were stored by the task before this one."""
    from airflow.sdk import ObjectStoragePath

    from tutormax_ops.core.notify import send_email

    if not should_notify(result["notify"], result["verdict"]):
        print(f"no email: notify={result['notify']}, verdict {result['verdict']}")
        return False
    artifacts = ObjectStoragePath(result["artifacts_uri"])
    with tempfile.TemporaryDirectory(prefix="tutormax-email-") as tmp:
        attachments = []
        for source, name in (("trend.png", "trend.png"), (f"{PREFIX}.html", "locust_report.html")):
            if (artifacts / source).exists():
                (Path(tmp) / name).write_bytes((artifacts / source).read_bytes())
                attachments.append(Path(tmp) / name)
        send_email(
            subject=f"load test {result['profile']}: {result['headline']}"[:250],
            html=(artifacts / "email.html").read_text(),
            attachments=attachments,
        )
    print(f"emailed: {result['headline']}")
    return True


def enforce_verdict(result: Mapping[str, Any]) -> str:
    """Fail the DAG run on anything but a pass, so the run's state tells what the email told."""
    if result["verdict"] != "pass":
        raise LoadTestVerdict(f"load test {result['profile']}: {result['headline']}")
    return result["verdict"]
