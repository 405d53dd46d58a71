"""Clean stops: a signal to a running stack stops every server it started, and the servers of a
killed run are found and stopped at the next start.

The stack runs as `python -m tutormax_ops.devstack.demo --serve`: the same start-up as
`make airflow` (stack, service data, the reference service) without Airflow's own processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tutormax_ops.core.paths import PROJECT_ROOT, STATE_DIR
from tutormax_ops.devstack import stack as devstack

READY = "servers up"


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A demo folder inside the checkout (as root, PostgreSQL's user may not enter /tmp's pytest folder)."""
    folder = STATE_DIR / "test" / str(os.getpid()) / f"signals-{tmp_path.name}"
    yield folder
    devstack.stop_leftovers(folder)
    shutil.rmtree(folder, ignore_errors=True)


def start_serving(state: Path) -> tuple[subprocess.Popen[str], list[psutil.Process]]:
    """The demo in --serve mode, and every process it started, once its servers are up."""
    env = {key: value for key, value in os.environ.items() if key not in devstack.EXTERNAL_ENV.values()}
    env.update(
        devstack.python_env(
            TUTORMAX_DEMO_STATE=str(state), TUTORMAX_DEMO_DAYS="1", TUTORMAX_DEMO_SESSIONS_PER_DAY="500"
        )
    )
    demo = subprocess.Popen(
        [sys.executable, "-m", "tutormax_ops.devstack.demo", "--serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the test signals the demo's PID, as `kill PID` does, not a group
    )
    lines = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        lines.append(line)
        if READY in line or not line:
            break
    assert READY in lines[-1], "".join(lines)
    return demo, psutil.Process(demo.pid).children(recursive=True)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_every_server_the_stack_started(state: Path, signum: int) -> None:
    demo, started = start_serving(state)
    assert len(started) >= 4  # PostgreSQL (and its backends), Redis, the SMTP sink, the service
    os.kill(demo.pid, signum)
    output, _ = demo.communicate(timeout=120)
    assert demo.returncode == 0, output
    _, alive = psutil.wait_procs(started, timeout=10)
    assert alive == [], [process.info for process in alive]
    assert list(state.rglob("*.pid.json")) == []
    assert "stopping everything the demo started" in output


@pytest.mark.slow
def test_servers_of_a_killed_run_are_stopped_at_the_next_start(state: Path) -> None:
    demo, started = start_serving(state)
    try:
        os.kill(demo.pid, signal.SIGKILL)  # no cleanup at all: the servers live on under PID 1
        demo.wait(30)
        assert all(process.is_running() for process in started if process.name() != "python")
        stopped = devstack.stop_leftovers(state)
        assert len(stopped) >= 4, stopped
        _, alive = psutil.wait_procs(started, timeout=10)
        assert alive == []
        assert devstack.stop_leftovers(state) == []
    finally:
        for process in started:
            if process.is_running():
                process.kill()


SESSION_PROBE = """
import json, os, time
from pathlib import Path

def test_wait(stack):
    pids = [managed.pid for managed in stack.processes]
    Path(os.environ["PROBE_READY"]).write_text(json.dumps(pids))
    time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_test_session_stops_its_servers(tmp_path: Path, signum: int) -> None:
    """A pytest session of this suite (tests/conftest.py as a plugin) told to stop mid-test tears
    its fixtures down: the session's servers stop."""
    (tmp_path / "test_probe.py").write_text(SESSION_PROBE)
    ready = tmp_path / "ready.json"
    session = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(PROJECT_ROOT / "pyproject.toml"),
            "--rootdir",
            str(PROJECT_ROOT),
        ]
        + ["-p", "conftest", "-p", "no:randomly", "-q", str(tmp_path / "test_probe.py")],
        env={**os.environ, "PROBE_READY": str(ready)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not ready.exists() and session.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ready.exists(), session.communicate(timeout=30)[0][-3000:]
        time.sleep(0.5)  # the file is written before the sleep begins
        started = psutil.Process(session.pid).children(recursive=True)
        assert {process.pid for process in started} >= set(json.loads(ready.read_text()))
        os.kill(session.pid, signum)
        output, _ = session.communicate(timeout=120)
    finally:
        if session.poll() is None:
            session.kill()
    _, alive = psutil.wait_procs(started, timeout=10)
    assert alive == [], (alive, output[-3000:])
