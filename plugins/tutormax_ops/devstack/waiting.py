"""A self-started server (its process and URL), waiting for it, and the error when it does not come up."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tutormax_ops.core.processes import LOOPBACK, ManagedProcess


@dataclass(frozen=True)
class Server:
    """A self-started server and the URL it answers on, its password included: never log the URL."""

    managed: ManagedProcess
    url: str = field(repr=False)

    def stop(self) -> None:
        self.managed.stop()


class ServiceStartError(RuntimeError):
    """A self-started service did not come up; the message points at its log."""


def wait_until(
    check: Callable[[], bool], *, timeout_s: float, what: str, log_path: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    hint = f"; see {log_path}" if log_path else ""
    raise ServiceStartError(f"{what} did not become ready within {timeout_s:.0f} s{hint}")


def wait_ready(managed: ManagedProcess, check: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Wait for a server just spawned; when it does not come up in time, or the wait is interrupted
    (Ctrl-C, SIGTERM), stop it before raising: a failed start leaves no process behind."""
    try:
        wait_until(check, timeout_s=timeout_s, what=what, log_path=managed.log_path)
    except BaseException:
        managed.stop()
        raise


def port_accepts(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0
