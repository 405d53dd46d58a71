"""A real Airflow (`airflow standalone`: scheduler, DAG processor, API server and triggerer) on a
loopback port, with its own AIRFLOW_HOME, against the stack's servers: `make airflow` and the
test tier that runs DAGs the way operators do both start it here.

- The admin's password is ours: written to the simple auth manager's password file (0600) before
  Airflow starts, so Airflow keeps it and never prints a generated one; `RunningAirflow.token()`
  trades it for a JWT at `POST /auth/token`, as a script of the operators would.
- Every component runs in the standalone's process group; `stop()` signals the group and kills
  whatever outlives the grace period. A PID file lets a later run stop what a killed one left.
- Ready means `/api/v2/monitor/health` reports the metadatabase, scheduler, DAG processor and
  triggerer healthy: each component is up and heartbeating, so a trigger is scheduled at once.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tutormax_ops.core.processes import LOOPBACK, ManagedProcess, spawn
from tutormax_ops.devstack.passwords import new_password, write_private
from tutormax_ops.devstack.stack import airflow_environment
from tutormax_ops.devstack.waiting import ServiceStartError

ADMIN = "admin"
PASSWORD_FILE = "simple_auth_manager_passwords.json.generated"
COMPONENTS = ("metadatabase", "scheduler", "dag_processor", "triggerer")


def pool_settings(cpus: int | None = None) -> dict[str, str]:
    """Airflow's pools sized to the machine: its defaults (32 task slots, 4 API workers) need about
    6 GB on a 2-core laptop."""
    cpus = cpus or os.cpu_count() or 1
    return {
        "AIRFLOW__CORE__PARALLELISM": str(max(2, 2 * cpus)),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(max(2, 2 * cpus)),
        "AIRFLOW__API__WORKERS": str(min(4, max(1, cpus // 2))),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": str(min(4, max(1, cpus // 2))),
    }


@dataclass(frozen=True)
class RunningAirflow:
    """A started `airflow standalone`: its URL, home and admin login (never log the password)."""

    managed: ManagedProcess
    base_url: str
    home: Path
    password: str = field(repr=False)

    def token(self, timeout_s: float = 30) -> str:
        """A JWT for the admin from `POST /auth/token` (the REST API's Bearer, the UI's `_token` cookie)."""
        body = json.dumps({"username": ADMIN, "password": self.password}).encode()
        request = urllib.request.Request(
            f"{self.base_url}/auth/token",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())["access_token"]

    def health(self, timeout_s: float = 5) -> dict:
        with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=timeout_s) as response:
            return json.loads(response.read())

    def stop(self, grace_s: float = 30) -> None:
        self.managed.stop(grace_s=grace_s)


def server_environment(
    home: Path,
    *,
    port: int,
    host: str = LOOPBACK,
    dag_refresh_s: int | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """`airflow_environment` plus what a served Airflow needs: the address its API server listens
    on, its URL for the UI and the task runners' Execution API (both default to :8080 otherwise),
    a JWT secret of its own, pools sized to the machine, and optionally a short interval for the
    DAG processor to list the folder."""
    env = airflow_environment(home)
    base_url = f"http://{LOOPBACK}:{port}"
    env.update(pool_settings())
    env.update(
        {
            "AIRFLOW__API__HOST": host,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": new_password(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
                Path(env["AIRFLOW_HOME"]) / PASSWORD_FILE
            ),
        }
    )
    if dag_refresh_s is not None:
        env["AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL"] = str(dag_refresh_s)
    env.update(extra or {})
    return env


def launch_airflow(
    home: Path,
    *,
    port: int,
    log_dir: Path,
    host: str = LOOPBACK,
    env: dict[str, str] | None = None,
    dag_refresh_s: int | None = None,
) -> RunningAirflow:
    """Start `airflow standalone` with `server_environment(home, …)` plus `env` (connections,
    TutorMax settings), the admin's password set first; do not wait for it."""
    server_env = server_environment(home, port=port, host=host, dag_refresh_s=dag_refresh_s, extra=env)
    password = new_password()
    password_file = Path(server_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    write_private(password_file, json.dumps({ADMIN: password}))
    airflow = str(Path(sys.executable).with_name("airflow"))
    managed = spawn(
        "airflow-standalone",
        [airflow, "standalone"],
        log_path=log_dir / "airflow-standalone.log",
        env={**os.environ, **server_env},
        pid_file=log_dir / "airflow-standalone.pid.json",
    )
    return RunningAirflow(managed, f"http://{LOOPBACK}:{port}", Path(server_env["AIRFLOW_HOME"]), password)


def start_airflow(home: Path, *, timeout_s: float = 300, **launch: Any) -> RunningAirflow:
    """`launch_airflow`, then wait until every component is healthy; a failed or interrupted start
    stops it before raising."""
    running = launch_airflow(home, **launch)
    try:
        wait_healthy(running, timeout_s)
    except BaseException:
        running.stop()
        raise
    return running


def wait_healthy(running: RunningAirflow, timeout_s: float) -> None:
    """Poll the health endpoint; an exited standalone ends the wait at once. The error names the
    last answer and ends with the log's tail (a component that never came up says why there)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        code = running.managed.process.poll()
        if code is not None:
            raise ServiceStartError(f"airflow standalone exited ({code}){_log_tail(running)}")
        try:
            last = running.health()
            if all((last.get(part) or {}).get("status") == "healthy" for part in COMPONENTS):
                return
        except (OSError, ValueError) as error:
            last = error
        if time.monotonic() > deadline:
            raise ServiceStartError(
                f"airflow standalone not healthy within {timeout_s:.0f} s; last answer: {last!r}{_log_tail(running)}"
            )
        time.sleep(1)


def _log_tail(running: RunningAirflow, chars: int = 4000) -> str:
    text = running.managed.log_path.read_text(errors="replace") if running.managed.log_path.exists() else ""
    return f"; {running.managed.log_path} ends:\n{text[-chars:]}"
