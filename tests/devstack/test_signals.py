"""Clean stops: a signal to a running stack stops every server it started, and the servers of a
killed run are found and stopped at the next start.

The stack runs as `python -m tutormax_ops.devstack.demo --serve`: the same start-up as
`make airflow` (stack, service data, the reference service) without Airflow's own processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tutormax_ops.core.paths import PROJECT_ROOT, STATE_DIR
from tutormax_ops.devstack import stack as devstack

# `--serve` (`make serve`) prints this once every server is up and the env file is written.
READY = "Ctrl-C, SIGTERM or SIGHUP stops every server"


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A demo folder inside the checkout (as root, PostgreSQL's user may not enter /tmp's pytest folder)."""
    folder = STATE_DIR / "test" / str(os.getpid()) / f"signals-{tmp_path.name}"
    yield folder
    # A failed or interrupted test may leave the demo running: stop it (it stops its servers), then
    # whatever of its servers outlived it.
    leftovers = processes_of(folder)
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(leftovers, timeout=30)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    devstack.stop_leftovers(folder)
    shutil.rmtree(folder, ignore_errors=True)


class Output:
    """A process's output, read by a thread: every wait on it has a deadline (a silent process cannot
    hang the test), and the process never blocks on a full pipe."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.ended = False
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    @property
    def text(self) -> str:
        with self.changed:
            return "".join(self.lines)

    def wait_for(self, text: str, timeout_s: float) -> bool:
        """Whether `text` appeared before the output ended or the deadline passed."""
        with self.changed:
            self.changed.wait_for(lambda: self.ended or text in "".join(self.lines), timeout_s)
            return text in "".join(self.lines)

    def until_exit(self, timeout_s: float) -> str:
        """All the output, once the process exited and its pipe closed (TimeoutExpired after the deadline)."""
        self.process.wait(timeout_s)
        with self.changed:
            if not self.changed.wait_for(lambda: self.ended, timeout_s):
                raise subprocess.TimeoutExpired(self.process.args, timeout_s)
        return self.text


def start_serving(
    state: Path, mode: str = "--serve", ready: str = READY, **extra_env: str
) -> tuple[subprocess.Popen[str], Output, list[psutil.Process]]:
    """The demo in `mode`, its output, and every process it started, once it printed `ready`."""
    env = {key: value for key, value in os.environ.items() if key not in devstack.EXTERNAL_ENV.values()}
    env.update(
        devstack.python_env(
            TUTORMAX_DEMO_STATE=str(state),
            TUTORMAX_SERVE_STATE=str(state),  # `--serve` works in its own folder
            TUTORMAX_DEMO_DAYS="1",
            TUTORMAX_DEMO_SESSIONS_PER_DAY="500",
            **extra_env,
        )
    )
    demo = subprocess.Popen(
        [sys.executable, "-m", "tutormax_ops.devstack.demo", mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the test signals the demo's PID, as `kill PID` does, not a group
    )
    output = Output(demo)
    assert output.wait_for(ready, timeout_s=240), output.text
    return demo, output, psutil.Process(demo.pid).children(recursive=True)


def processes_of(state: Path) -> list[psutil.Process]:
    """Every process on the machine started under the demo in `state` (they inherit its environment)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("TUTORMAX_DEMO_STATE") == str(state):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.mark.slow
def test_a_signal_stops_every_server_the_stack_started(state: Path) -> None:
    """SIGTERM, as `kill` and `docker stop` send. SIGHUP and SIGINT take the same path once
    `signals_raise` turned them into KeyboardInterrupt: tests/core/test_processes.py checks each of
    them on a cheap process, instead of one more full stack per signal here."""
    demo, output, started = start_serving(state)
    assert len(started) >= 4  # PostgreSQL (and its backends), Redis, the SMTP sink, the service
    os.kill(demo.pid, signal.SIGTERM)
    text = output.until_exit(timeout_s=120)
    assert demo.returncode == 0, text
    _, alive = psutil.wait_procs(started, timeout=10)
    assert alive == [], [process.info for process in alive]
    assert list(state.rglob("*.pid.json")) == []
    assert "stopping everything `make serve` started" in text


@pytest.mark.slow
def test_servers_of_a_killed_run_are_stopped_at_the_next_start(state: Path) -> None:
    demo, _, started = start_serving(state)
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


@pytest.mark.slow
@pytest.mark.timeout(900)  # its own deadlines: 240 s for the stack, 300 s for Airflow, 180 s to stop
def test_sigterm_to_make_airflow_stops_airflow_and_the_stack(state: Path) -> None:
    """`make airflow` (the demo's --standalone: the stack and a real `airflow standalone`), once
    Airflow is up, gets SIGTERM as from `docker stop`: no process it started remains."""
    api_port = devstack.free_port()
    demo, demo_output, _ = start_serving(
        state, "--standalone", "its output:", AIRFLOW__API__PORT=str(api_port)
    )
    try:
        log = state / "stack" / "logs" / "airflow-standalone.log"
        deadline, up = time.monotonic() + 300, False
        while time.monotonic() < deadline and demo.poll() is None:
            up = "Airflow is ready" in log.read_text(errors="replace") and devstack.port_accepts(api_port)
            if up:
                break
            time.sleep(1)
        assert up, log.read_text(errors="replace")[-3000:]
        started = psutil.Process(demo.pid).children(recursive=True)
        names = " ".join(" ".join(command_start(process)) for process in started)
        for part in ("postgres", "redis", "smtp_sink", "tutormax_service", "scheduler", "api_server"):
            assert part in names, names  # the stack and Airflow's components are all running
        os.kill(demo.pid, signal.SIGTERM)
        output = demo_output.until_exit(timeout_s=180)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert "stopping everything the demo started" in output, output[-3000:]
    _, alive = psutil.wait_procs(started, timeout=15)
    assert alive == [], [(process.pid, process.cmdline()) for process in alive]
    assert processes_of(state) == []  # nothing re-parented before the snapshot either
    assert list(state.rglob("*.pid.json")) == []


def command_start(process: psutil.Process) -> list[str]:
    """The first words of its command line; none for a short-lived child that already exited."""
    try:
        return process.cmdline()[:3]
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []


STACK_PROBE = """
import json, os, time
from pathlib import Path

def test_wait(stack):
    pids = [managed.pid for managed in stack.processes]
    Path(os.environ["PROBE_READY"]).write_text(json.dumps(pids))
    time.sleep(600)
"""
# The same teardown of a session fixture, on a process of the probe's own: cheaper than a stack.
CHILD_PROBE = """
import json, os, sys, time
from pathlib import Path

import pytest

from tutormax_ops.core.processes import spawn

@pytest.fixture(scope="session")
def child(tmp_path_factory):
    started = spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"],
                    log_path=tmp_path_factory.mktemp("child") / "sleeper.log")
    yield started
    started.stop(grace_s=5)

def test_wait(child):
    Path(os.environ["PROBE_READY"]).write_text(json.dumps([child.pid]))
    time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "probe"),
    [(signal.SIGTERM, STACK_PROBE), (signal.SIGHUP, CHILD_PROBE)],
    ids=["SIGTERM-stack", "SIGHUP-child"],
)
def test_a_signal_to_the_test_session_stops_its_servers(tmp_path: Path, signum: int, probe: str) -> None:
    """A pytest session of this suite (tests/conftest.py as a plugin) told to stop mid-test tears
    its fixtures down: the session's servers stop. Each signal the session handles is sent once;
    the full stack's teardown is judged once, under SIGTERM."""
    (tmp_path / "test_probe.py").write_text(probe)
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
        # The session's handlers are in place since it started: a signal from here on is handled.
        started = psutil.Process(session.pid).children(recursive=True)
        assert {process.pid for process in started} >= set(json.loads(ready.read_text()))
        os.kill(session.pid, signum)
        output, _ = session.communicate(timeout=120)
    finally:
        if session.poll() is None:
            session.kill()
    _, alive = psutil.wait_procs(started, timeout=10)
    assert alive == [], (alive, output[-3000:])
