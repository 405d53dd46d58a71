"""Child processes on this host: a free loopback port, and a process started with its output in a
log file, in a session or process group of its own, stopped by its PID.

The load test runs Locust through `spawn`; the devstack starts its servers the same way.
A process spawned with `pid_file` records its PID and start time there until it is stopped, so a
later run can find and stop what a killed run left behind (`stop_recorded`). `signals_raise`
turns SIGTERM, SIGHUP and SIGINT into KeyboardInterrupt, so the `finally` blocks that stop children run
whichever way the parent is told to stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


@dataclass
class ManagedProcess:
    """A child process in its own session, stopped by its PID."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM
    pid_file: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace_s: float = 20) -> None:
        """Signal the process (and its group, when it leads one), wait, then kill what is left."""
        if self.process.poll() is None:
            stop_tree(self.pid, self.stop_signal, grace_s=grace_s)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)


def stop_tree(pid: int, stop_signal: int = signal.SIGTERM, *, grace_s: float = 20) -> None:
    """Stop `pid`, its process group if it leads one, and every descendant, SIGKILL after `grace_s`."""
    try:
        leader = psutil.Process(pid)
        tree = [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, stop_signal)
        else:
            os.kill(pid, stop_signal)
    _, alive = psutil.wait_procs(tree, timeout=grace_s)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def stop_recorded(pid_file: Path, *, grace_s: float = 20) -> bool:
    """Stop the process `pid_file` names if it is still the one recorded there (same start time);
    remove the file. True when a leftover process was found."""
    try:
        record = json.loads(pid_file.read_text())
        process = psutil.Process(record["pid"])
        same = abs(process.create_time() - record["create_time"]) < 0.5
    except (OSError, ValueError, KeyError, TypeError, psutil.NoSuchProcess):
        same = False
    if same:
        stop_tree(record["pid"], record.get("stop_signal", signal.SIGTERM), grace_s=grace_s)
    pid_file.unlink(missing_ok=True)
    return same


@contextlib.contextmanager
def signals_raise(
    signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT),
) -> Iterator[None]:
    """Within the block, the first SIGTERM/SIGHUP/SIGINT raises KeyboardInterrupt (as Ctrl-C does),
    so cleanup in `finally` runs; later ones are ignored, so they cannot interrupt that cleanup.
    SIGINT is handled here too: a process started in the background by a non-interactive shell
    inherits it ignored, and Python would leave it so."""
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if not received:
            received.append(signum)
            raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def spawn(
    name: str,
    argv: list[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
    cwd: Path | None = None,
    process_group: int | None = None,
    pid_file: Path | None = None,
) -> ManagedProcess:
    """Start `argv` with its output appended to `log_path`: in a session of its own, or, with
    `process_group`, in that process group (0: a new group led by this process). With `pid_file`,
    record the process there until `stop` (see `stop_recorded`)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    grouping: dict[str, Any] = (
        {"start_new_session": True} if process_group is None else {"process_group": process_group}
    )
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            user=user,
            cwd=cwd,
            **grouping,
        )
    if pid_file is not None:
        with contextlib.suppress(psutil.NoSuchProcess):  # already gone: nothing to record
            record = {
                "name": name,
                "pid": process.pid,
                "create_time": psutil.Process(process.pid).create_time(),
                "stop_signal": int(stop_signal),
            }
            pid_file.parent.mkdir(parents=True, exist_ok=True)
            pid_file.write_text(json.dumps(record))
    return ManagedProcess(name, process, log_path, stop_signal, pid_file)
