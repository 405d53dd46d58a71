"""Locust's command lines, and stopping a running locust's whole process group."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from loadtest.factories import SETTINGS, plan
from tutormax_ops.core.paths import LOCUST_DIR
from tutormax_ops.loadtest import runner
from tutormax_ops.loadtest.runner import RECORDER, STRESS_SHAPE, locust_commands, run_locust

LOCUSTFILE = LOCUST_DIR / "tutormax_locustfile.py"  # the default profile's


def test_one_process_runs_headless_with_every_output_and_no_exit_code_on_errors(tmp_path: Path) -> None:
    [(role, argv)] = locust_commands(plan(), SETTINGS.loadtest, tmp_path, master_port=5557)
    assert role == "locust"
    assert argv[argv.index("-f") + 1] == f"{LOCUSTFILE},{RECORDER}"  # any locustfile is recorded per second
    for flag in ("--headless", "--csv-full-history", "--only-summary"):
        assert flag in argv
    pairs = dict(zip(argv, argv[1:], strict=False))
    assert pairs["--exit-code-on-error"] == "0"
    assert pairs["--stop-timeout"] == str(SETTINGS.loadtest.stop_timeout_s)
    assert pairs["--csv"] == str(tmp_path / "locust") and pairs["--json-file"] == str(tmp_path / "locust")
    assert pairs["--html"] == str(tmp_path / "locust.html") and pairs["-t"] == "60s"


def test_distributed_mode_is_a_master_expecting_every_worker(tmp_path: Path) -> None:
    stress = plan(processes=2, step_users=100, step_seconds=30, users=1000)
    commands = dict(locust_commands(stress, SETTINGS.loadtest, tmp_path, master_port=5557))
    assert list(commands) == ["master", "worker-1", "worker-2"]
    master = dict(zip(commands["master"], commands["master"][1:], strict=False))
    assert master["--expect-workers"] == "2" and master["--master-bind-port"] == "5557"
    assert master["-f"] == f"{LOCUSTFILE},{RECORDER},{STRESS_SHAPE}"
    worker = commands["worker-1"]
    assert "--worker" in worker and "--headless" not in worker and worker[-1] == "5557"


def test_remote_workers_alone_make_a_master_with_no_local_worker(tmp_path: Path) -> None:
    remote = SETTINGS.loadtest.model_copy(update={"remote_workers": 3})
    [(role, argv)] = locust_commands(plan(), remote, tmp_path, master_port=5557)
    pairs = dict(zip(argv, argv[1:], strict=False))
    assert role == "master" and pairs["--expect-workers"] == "3" and "--master" in argv


@pytest.mark.e2e
@pytest.mark.parametrize("ignore_sigint", [False, True], ids=["sigint-as-is", "sigint-ignored"])
def test_an_interrupted_run_stops_the_whole_group_and_leaves_no_process(
    tutormax_api: str, tmp_path: Path, ignore_sigint: bool
) -> None:
    """What an execution timeout does: an exception raised while locust runs (here from the window
    callback, as AirflowTaskTimeout would from its alarm) stops the group with SIGINT, so locust
    still writes its HTML report, and nothing of the group survives. Also when this process ignores
    SIGINT, as a worker started in the background does: locust inherits that, and must still stop."""
    started: dict[str, int] = {}
    previous = signal.getsignal(signal.SIGINT)
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def interrupt() -> None:
        started["pgid"] = runner._active_group.pgid
        raise TimeoutError("simulated execution timeout")

    loadtest_settings = SETTINGS.loadtest.model_copy(update={"warmup_fraction": 0.0, "kill_grace_s": 10})
    try:
        with pytest.raises(TimeoutError):
            run_locust(plan(host=tutormax_api, users=4, spawn_rate=4, run_time_s=120), loadtest_settings, tmp_path,
                       on_window_open=interrupt)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    survivors = [
        process.pid for process in psutil.process_iter() if _process_group(process) == started["pgid"]
    ]
    assert survivors == []
    assert (tmp_path / "locust.html").is_file()  # SIGINT, not SIGTERM: the report is written
    assert (tmp_path / "locust.json").is_file()


def _process_group(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None


def test_a_group_that_ignores_sigint_is_killed_after_the_grace(tmp_path: Path) -> None:
    """The escalation: SIGINT to the group, SIGKILL once `grace_s` has passed."""
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('ignoring', flush=True);"
        " time.sleep(120)",
    ]
    group = runner.LocustGroup()
    logs = [tmp_path / "stubborn.log", tmp_path / "stubborn-worker.log"]
    group.launch("locust", stubborn, env=os.environ, log_path=logs[0])
    group.launch("worker-1", stubborn, env=os.environ, log_path=logs[1])
    deadline = time.monotonic() + 60
    while not all(log.is_file() and "ignoring" in log.read_text() for log in logs):  # handlers installed
        assert time.monotonic() < deadline, "the stubborn processes did not start in 60 s"
        time.sleep(0.05)
    started = time.monotonic()
    group.stop("a test deadline", grace_s=2)
    assert time.monotonic() - started >= 2  # SIGINT alone did not stop them
    assert not group.running() and group.stopped_by == "a test deadline"
    assert group.exit_codes() == {"locust": -signal.SIGKILL, "worker-1": -signal.SIGKILL}


@pytest.mark.e2e
def test_the_runners_own_deadline_stops_locust_and_says_so(
    tutormax_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locust asked for 60 s; the runner allows the plan's 3 s plus no slack, then stops the group."""
    settings = SETTINGS.loadtest.model_copy(
        update={"start_slack_s": 0, "stop_timeout_s": 0, "kill_grace_s": 10}
    )
    short = plan(host=tutormax_api, users=2, spawn_rate=2, run_time_s=3)
    late = replace(short, run_time_s=60)  # what locust is told: it would run on
    commands = runner.locust_commands(late, settings, tmp_path, master_port=0)
    monkeypatch.setattr(runner, "locust_commands", lambda *args, **kwargs: commands)
    outcome = run_locust(short, settings, tmp_path, log=lambda _: None)
    assert outcome.stopped_by is not None and outcome.stopped_by.startswith("still running")
    assert (outcome.ended_at - outcome.started_at).total_seconds() < 30
    assert all(code is not None for code in outcome.exit_codes.values())  # nothing left running


@pytest.mark.e2e
def test_on_kill_stops_the_running_group(tutormax_api: str, tmp_path: Path) -> None:
    """What Airflow does to a killed task: `on_kill` from another thread while `run_locust` runs."""
    from tutormax_ops.loadtest.operator import LoadTestRunOperator

    result: dict[str, object] = {}
    loadtest_settings = SETTINGS.loadtest.model_copy(update={"kill_grace_s": 10})
    running = threading.Thread(
        target=lambda: result.update(
            outcome=run_locust(
                plan(host=tutormax_api, users=2, spawn_rate=2, run_time_s=120),
                loadtest_settings,
                tmp_path,
                log=lambda _: None,
            )  # fmt: skip
        )
    )
    running.start()
    log = tmp_path / "locust.log"
    deadline = time.monotonic() + 60
    while runner._active_group is None or not (log.exists() and "Ramping to" in log.read_text()):
        assert time.monotonic() < deadline, "locust did not start its load in 60 s"  # then it is mid-run
        time.sleep(0.2)
    pgid = runner._active_group.pgid
    LoadTestRunOperator(task_id="run", plan={}).on_kill()
    running.join(60)
    assert not running.is_alive()
    assert result["outcome"].stopped_by == "the task was killed"
    assert [p.pid for p in psutil.process_iter() if _process_group(p) == pgid] == []
