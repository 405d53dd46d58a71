"""Step 3a, the Locust process group: launched, watched, sampled and stopped as a whole."""

from __future__ import annotations

import contextlib
import csv
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from airflow.sdk.exceptions import AirflowFailException

from tutormax_ops.core.loadtest_settings import LoadTest
from tutormax_ops.core.paths import LOCUST_DIR
from tutormax_ops.core.service import credentials_for
from tutormax_ops.loadtest.machine import (
    HOST_ROLE,
    MACHINE_ROLES,
    SERVICE_ROLE,
    STEAL_ROLE,
    host_cpu,
    local_service,
    service_cpu,
)
from tutormax_ops.loadtest.model import RunPlan
from tutormax_ops.loadtest.roster import missing_workers, read_roster
from tutormax_ops.loadtest.traffic import base_env, selection_args, traffic_env

if TYPE_CHECKING:
    import psutil


STRESS_SHAPE = LOCUST_DIR / "stress_shape.py"
# Every locust records each request per endpoint and per second (include/locust/per_second.py),
# whatever its locustfile imports: the steady state is judged from those seconds.
RECORDER = LOCUST_DIR / "record_seconds.py"
PREFIX = "locust"  # every locust output file starts with it: locust_stats.csv, locust.json, locust.html
LOCUST_OUTPUTS = (
    f"{PREFIX}_stats.csv",
    f"{PREFIX}_stats_history.csv",
    f"{PREFIX}_failures.csv",
    f"{PREFIX}_exceptions.csv",
    f"{PREFIX}.json",
    f"{PREFIX}.html",
)

SAMPLE_EVERY_S = 1.0
PROGRESS_EVERY_S = 5.0
_LOG_PROBLEM = re.compile(r"/(WARNING|ERROR|CRITICAL)/")
# The load starts when locust logs one of these: "Ramping to" from a single process, "Sending
# spawn jobs" from a master (its workers log to their own files), "Shape test starting" from either.
# Its log is written as it happens; the history CSV is flushed only every 5 s, too late to time the
# server-side window by.
_LOAD_STARTED = re.compile(r"Ramping to \d+ users|Sending spawn jobs of \d+ users|Shape test starting")


@dataclass(frozen=True)
class CpuSample:
    elapsed_s: float
    role: str  # "locust", "master", "worker-N", or one of `machine.MACHINE_ROLES`
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
    service_processes: int = 0  # the local service's processes found at launch (0: not on this machine)


class WorkersMissing(AirflowFailException):
    """The master started no load: fewer workers than expected joined with its locustfiles. The
    message says how many joined and names each refused one; a retry of the same setup cannot help."""


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
        host_cpu()  # the host's first reading too

    def running(self) -> bool:
        return any(process.poll() is None for process in self.processes.values())

    def sample_cpu(self, elapsed_s: float, service: Sequence[psutil.Process] = ()) -> list[CpuSample]:
        import psutil

        at = round(elapsed_s, 1)
        samples = []
        for role, monitor in self._monitors.items():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                samples.append(CpuSample(at, role, monitor.pid, monitor.cpu_percent(None)))
        # The whole machine, in % of all its cores: locust and the service may share it.
        busy, steal = host_cpu()
        samples += [CpuSample(at, HOST_ROLE, 0, busy), CpuSample(at, STEAL_ROLE, 0, steal)]
        if (served := service_cpu(service)) is not None:
            samples.append(CpuSample(at, SERVICE_ROLE, 0, served))
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


def locust_env(plan: RunPlan, loadtest: LoadTest, folder: Path) -> dict[str, str]:
    """The task's environment without Airflow's settings and connections, plus what the locustfile
    and the stress shape read, and the `tutormax_api` credentials when the host is that connection's
    (never written to a file or log); the service's own times go to `folder`."""
    env = base_env()
    env["TUTORMAX_LOCUST_SERVER_TIMES"] = str(folder)
    env.update(traffic_env(loadtest.profiles[plan.profile], loadtest, folder))
    env.update(credentials_for(plan.host)[1])  # only for the connection's own host
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
    files = ",".join(map(str, (plan.locustfile, RECORDER, *([STRESS_SHAPE] if plan.stress else []))))
    base = [sys.executable, "-m", "locust", "-f", files, *selection_args(plan.user_classes, plan.tags)]
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
    expected = plan.processes + loadtest.remote_workers
    if expected == 0:
        return [("locust", [*base, *test])]
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
    env = locust_env(plan, loadtest, folder)
    started_at, launched = datetime.now(UTC), time.monotonic()
    deadline = launched + plan.planned_duration_s + loadtest.start_slack_s + loadtest.stop_timeout_s
    measure_after = plan.measure_after_s(loadtest.warmup_fraction)
    history = _HistoryTail(folder / f"{PREFIX}_stats_history.csv")
    commands = locust_commands(plan, loadtest, folder, master_port=loadtest.master_port or free_port())
    logs = [_Tail(folder / f"{role}.log") for role, _ in commands]
    service = local_service(plan.host)  # sampled beside locust when the service runs here
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
            tick = group.sample_cpu(now - launched, service)
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
    expected = plan.processes + loadtest.remote_workers
    if expected and first_user_at is None and group.stopped_by is None:
        raise WorkersMissing(
            f"no load was sent: {missing_workers(read_roster(folder), expected)} "
            f"within loadtest.start_slack_s ({loadtest.start_slack_s:g} s)"
        )
    return RunOutcome(
        started_at=started_at,
        ended_at=datetime.now(UTC),
        exit_codes=group.exit_codes(),
        stopped_by=group.stopped_by,
        window_opened_s=window_opened,
        cpu_samples=tuple(samples),
        service_processes=len(service),
    )


def _progress(
    row: Mapping[str, str] | None, elapsed_s: float, plan: RunPlan, tick: Sequence[CpuSample]
) -> str:
    cpu = max((sample.cpu_percent for sample in tick if sample.role not in MACHINE_ROLES), default=0.0)
    if row is None:
        return f"locust {elapsed_s:.0f}/{plan.planned_duration_s:g} s: starting (generator CPU {cpu:.0f}%)"
    requests, failures = int(row["Total Request Count"]), int(row["Total Failure Count"])
    return (
        f"locust {elapsed_s:.0f}/{plan.planned_duration_s:g} s: {row['User Count']} users, "
        f"{float(row['Requests/s']):.1f} req/s, p95 {row['95%']} ms, {requests} requests, "
        f"{failures} failures, generator CPU {cpu:.0f}%"
    )
