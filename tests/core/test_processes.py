"""core.processes: real child processes, their log files, process groups and ports."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from tutormax_ops.core.processes import LOOPBACK, free_port, spawn


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
