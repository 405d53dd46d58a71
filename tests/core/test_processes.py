"""core.processes: real child processes, their log files, process groups and ports."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tutormax_ops.core.processes import LOOPBACK, free_port, spawn
from tutormax_ops.devstack.stack import python_env


def test_a_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as server:
        server.bind((LOOPBACK, port))
        assert server.getsockname()[1] == port


def test_output_goes_to_the_log_and_stop_ends_the_process(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "child.log"
    code = "import sys, time; print('ready', flush=True); print('oops', file=sys.stderr, flush=True); time.sleep(60)"
    child = spawn("child", [sys.executable, "-c", code], log_path=log)
    try:
        assert os.getsid(child.pid) == child.pid  # a session of its own
        for _ in range(100):
            if "oops" in log.read_text():
                break
            time.sleep(0.05)
        assert log.read_text().split() == ["ready", "oops"]
    finally:
        child.stop(grace_s=5)
    assert child.process.poll() is not None


def test_children_joined_to_a_group_share_its_id(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    leader = spawn("leader", argv, log_path=tmp_path / "leader.log", process_group=0)
    member = spawn("member", argv, log_path=tmp_path / "member.log", process_group=leader.pid)
    try:
        assert os.getpgid(leader.pid) == leader.pid
        assert os.getpgid(member.pid) == leader.pid
        assert os.getsid(member.pid) == os.getsid(0)  # no new session when joining a group
    finally:
        member.stop(grace_s=5)
        leader.stop(grace_s=5)
    assert leader.process.poll() is not None and member.process.poll() is not None


# A process that turns the stop signals into KeyboardInterrupt and stops its own child in `finally`,
# as the demo and the test session do around their servers.
STOPS_ITS_CHILD = """
import sys
from pathlib import Path

from tutormax_ops.core.processes import signals_raise, spawn

with signals_raise():
    child = spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"], log_path=Path(sys.argv[1]))
    try:
        print(child.pid, flush=True)
        sys.stdin.read()  # until a signal
    except KeyboardInterrupt as stopped:
        print(stopped, flush=True)
    finally:
        child.stop(grace_s=5)
"""


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda signum: signal.Signals(signum).name
)
def test_each_stop_signal_runs_the_cleanup_that_stops_the_children(tmp_path: Path, signum: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", STOPS_ITS_CHILD, str(tmp_path / "sleeper.log")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    try:
        # The pid is printed inside the block: the handlers are in place from then on.
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "the process printed nothing in 60 s"
        child = psutil.Process(int(process.stdout.readline()))
        process.send_signal(signum)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0 and output.strip() == f"stopped by {signal.Signals(signum).name}"
    _, alive = psutil.wait_procs([child], timeout=10)
    assert alive == []
