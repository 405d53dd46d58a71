"""Child processes on this host: a free loopback port, and a process started with its output in a
log file, in a session or process group of its own, stopped by its PID.

The load test runs Locust through `spawn`; the devstack starts its servers the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace_s: float = 20) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, self.stop_signal)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(5)


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
) -> ManagedProcess:
    """Start `argv` with its output appended to `log_path`: in a session of its own, or, with
    `process_group`, in that process group (0: a new group led by this process)."""
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
    return ManagedProcess(name, process, log_path, stop_signal)
