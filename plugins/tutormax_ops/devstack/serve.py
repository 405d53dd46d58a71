"""`make serve`: the self-started stack for your own use, until stopped.

    make serve                                   # or: PYTHONPATH=plugins:include .venv/bin/python -m tutormax_ops.devstack.serve
    source .tutormax/serve/tutormax.env          # in another shell
    airflow dags test tutormax_smoke_connectivity

It starts PostgreSQL 18, Redis, the SMTP sink and the reference service (with demo data), runs
`airflow db migrate` in its own AIRFLOW_HOME, prints where each server is (passwords masked) and
writes an env file: AIRFLOW_HOME, every `AIRFLOW_CONN_*`, PYTHONPATH, PATH and the
`AIRFLOW__*`/`TUTORMAX_OPS__*` settings, so `source` makes `airflow dags test <dag>` run against
these servers. The env file holds the servers' passwords: it is written 0600 (owner only), and is
removed when the servers stop.

Environment: TUTORMAX_SERVE_STATE the folder it works in (default .tutormax/serve); the demo's
TUTORMAX_*_URL, TUTORMAX_DEMO_DAYS and TUTORMAX_DEMO_SESSIONS_PER_DAY apply too.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from tutormax_ops.core.paths import STATE_DIR
from tutormax_ops.core.processes import signals_raise
from tutormax_ops.devstack.connections import Endpoints
from tutormax_ops.devstack.demo import Progress, prepare
from tutormax_ops.devstack.passwords import write_private

SERVE_STATE = Path(os.environ.get("TUTORMAX_SERVE_STATE") or STATE_DIR / "serve")
ENV_FILE_NAME = "tutormax.env"


def masked(url: str) -> str:
    """`url` with its password replaced by `***` (the user name stays: it helps, and is no secret)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def server_lines(endpoints: Endpoints) -> list[str]:
    """One line per server: what it is, its connection id and its URL, password masked."""
    lines = [
        f"PostgreSQL (tutormax_db)       {masked(endpoints.db_url)}",
        f"results (tutormax_results)     {masked(endpoints.results_url)}",
        f"Redis (tutormax_redis)         {masked(endpoints.redis_url)}",
        f"SMTP (smtp_default)            {masked(endpoints.smtp_url)}",
    ]
    if endpoints.api_url:
        lines.append(f"TutorMax API (tutormax_api)    {endpoints.api_url}  (docs: {endpoints.api_url}/docs)")
    if endpoints.maildir:
        lines.append(f"emails land in                 {endpoints.maildir}")
    return lines


def env_file_text(env: dict[str, str]) -> str:
    """`export KEY='value'` lines; PATH puts this venv's `airflow` first and keeps the caller's PATH."""
    lines = [
        "# Written by `make serve`: holds passwords (mode 0600). `source` it, then `airflow dags test <dag>`."
    ]
    for key in sorted(env):
        if key == "PATH":
            venv_bin = env[key].split(os.pathsep, 1)[0]
            lines.append(f'export PATH={shlex.quote(venv_bin)}:"$PATH"')
        else:
            lines.append(f"export {key}={shlex.quote(env[key])}")
    return "\n".join(lines) + "\n"


def serve(state: Path = SERVE_STATE) -> int:
    """Start the stack, print it, write the env file; wait for Ctrl-C, SIGTERM or SIGHUP."""
    progress = Progress()
    state = state.resolve()
    with signals_raise():
        try:
            stack, env = prepare(progress, state=state)
        except KeyboardInterrupt:
            return 130
        env_file = state / ENV_FILE_NAME
        try:
            write_private(env_file, env_file_text(env))
            print("\n=== TutorMax Ops stack (passwords masked) ===", flush=True)
            for line in server_lines(stack.endpoints):
                print(f"  {line}", flush=True)
            print(f"  Airflow home                   {env['AIRFLOW_HOME']}", flush=True)
            print(f"  server logs                    {stack.log_dir}", flush=True)
            print(f"\nenv file (passwords inside, mode 0600): {env_file}", flush=True)
            print(f"  source {shlex.quote(str(env_file))}", flush=True)
            print("  airflow dags test tutormax_smoke_connectivity", flush=True)
            print("Ctrl-C, SIGTERM or SIGHUP stops every server.", flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
        finally:
            progress.step("stopping everything `make serve` started")
            env_file.unlink(missing_ok=True)
            stack.stop()


if __name__ == "__main__":
    sys.exit(serve())
