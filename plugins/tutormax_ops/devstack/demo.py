"""`make demo` and `make airflow`: start the stack, run the DAGs, say where the results are, stop.

    python -m tutormax_ops.devstack.demo               # every DAG in dags/, once, with `airflow dags test`
    python -m tutormax_ops.devstack.demo --standalone  # `airflow standalone` (the UI) against the same stack
    python -m tutormax_ops.devstack.demo --serve       # `make serve`: the servers, their URLs and an env file

Ctrl-C, SIGTERM and SIGHUP all stop everything the demo started. Servers a killed demo left
running under .tutormax/demo are stopped at the next start.

Environment: TUTORMAX_DB_URL, TUTORMAX_RESULTS_URL, TUTORMAX_REDIS_URL, TUTORMAX_API_URL and
TUTORMAX_SMTP_URL point the demo at your own servers instead of starting them (see devstack).
TUTORMAX_DEMO_DAYS and TUTORMAX_DEMO_SESSIONS_PER_DAY set how much demo data it loads (default 2 days
of 30,000 sessions);
TUTORMAX_DEMO_STATE the folder it works in (default .tutormax/demo).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tutormax_ops.core.paths import PROJECT_ROOT, STATE_DIR
from tutormax_ops.core.processes import signals_raise
from tutormax_ops.devstack import stack as devstack
from tutormax_ops.devstack.airflow_server import ADMIN, PASSWORD_FILE, launch_airflow

DEMO_STATE = Path(os.environ.get("TUTORMAX_DEMO_STATE") or STATE_DIR / "demo")
# Short profiles so the whole demo stays under five minutes on two cores.
DEMO_SETTINGS = {
    "TUTORMAX_OPS__MAINTENANCE__WINDOW_MINUTES": "10",
    "TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE": (DEMO_STATE / "artifacts").as_uri(),
    # The demo's service runs on the database the demo created, so the checklist may book through it.
    "TUTORMAX_OPS__HEALTH__INVALIDATION_PROBE__ENABLED": "true",
}
# The demo emails every report, so a newcomer sees what the weekly and nightly emails look like.
DEMO_CONF: dict[str, dict[str, object]] = {
    "tutormax_db_maintenance": {"notify": "always"},
    "tutormax_load_test": {"profile": "smoke", "run_time": 30, "notify": "always"},
}
DEMO_DATABASE = "tutormax_demo"
# `make airflow`'s UI, on every interface as `airflow standalone` has it by default.
UI_PORT, UI_HOST = 8080, "0.0.0.0"
FIRST_DAG = "tutormax_smoke_connectivity"  # if a connection is broken, say so before anything else


@dataclass(frozen=True)
class DagOutcome:
    dag_id: str
    state: str
    seconds: float
    log_path: Path


class Progress:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def step(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)


def dag_ids() -> list[str]:
    return sorted(
        (path.stem for path in (PROJECT_ROOT / "dags").glob("tutormax_*.py")),
        key=lambda d: (d != FIRST_DAG, d),
    )


def run_dag(dag_id: str, env: dict[str, str], log_dir: Path) -> DagOutcome:
    log_path = log_dir / f"dag-{dag_id}.log"
    started = time.monotonic()
    args = ["dags", "test", dag_id]
    if dag_id in DEMO_CONF:
        args += ["--conf", json.dumps(DEMO_CONF[dag_id])]
    completed = devstack.airflow_cli(*args, env=env)
    log_path.write_text(completed.stdout + completed.stderr)
    listed = devstack.airflow_cli("dags", "list-runs", dag_id, "--output", "json", env=env)
    # The CLI prints warnings on stdout too: the JSON is the line that starts with "[".
    json_lines = [line for line in listed.stdout.splitlines() if line.startswith("[")]
    runs = json.loads(json_lines[-1]) if listed.returncode == 0 and json_lines else []
    state = runs[0]["state"] if runs else f"unknown (exit {completed.returncode})"
    return DagOutcome(dag_id, state, time.monotonic() - started, log_path)


def demo_settings(state: Path) -> dict[str, str]:
    return {**DEMO_SETTINGS, "TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE": (state / "artifacts").as_uri()}


def prepare(
    progress: Progress, *, airflow: bool = True, state: Path = DEMO_STATE
) -> tuple[devstack.Stack, dict[str, str]]:
    for leftover in devstack.stop_leftovers(state):
        progress.step(f"stopped a server left running by an earlier run ({leftover})")
    shutil.rmtree(state, ignore_errors=True)
    os.environ.update(demo_settings(state))
    progress.step("starting PostgreSQL 18, Redis and the SMTP sink (or using yours, from TUTORMAX_*_URL)")
    stack = devstack.start_stack(state / "stack", database=DEMO_DATABASE)
    try:
        env = devstack.airflow_environment(state / "airflow_home")
        if airflow:
            progress.step(f"airflow db migrate (SQLite metadata in {state / 'airflow_home'})")
            migrated = devstack.airflow_cli("db", "migrate", env=env)
            if migrated.returncode != 0:
                raise RuntimeError(f"airflow db migrate failed:\n{migrated.stderr[-3000:]}")
        # The service database is always one start_stack created (a scratch one on your server).
        progress.step(f"seeding database {DEMO_DATABASE!r}: extensions, schema, demo data")
        days = int(os.environ.get("TUTORMAX_DEMO_DAYS", "2"))
        per_day = int(os.environ.get("TUTORMAX_DEMO_SESSIONS_PER_DAY", "30000"))
        loaded = devstack.load_service_data(stack.endpoints.db_url, days=days, sessions_per_day=per_day)
        progress.step(f"  seed: {loaded}")
        progress.step("starting the reference TutorMax service (uvicorn, one worker per core)")
        stack.start_service()
        env.update(stack.endpoints.airflow_env())
        env.update(demo_settings(state))
        return stack, env
    except BaseException:
        stack.stop()
        raise


def demo() -> int:
    progress = Progress()
    with signals_raise():
        stack, env = prepare(progress)
        outcomes: list[DagOutcome] = []
        try:
            for dag_id in dag_ids():
                progress.step(f"airflow dags test {dag_id} …")
                outcome = run_dag(dag_id, env, stack.log_dir)
                outcomes.append(outcome)
                progress.step(f"  {dag_id}: {outcome.state} in {outcome.seconds:.0f} s")
        finally:
            progress.step("stopping everything the demo started")
            stack.stop()
    print_summary(outcomes, stack)
    return 0 if outcomes and all(outcome.state == "success" for outcome in outcomes) else 1


def print_summary(outcomes: list[DagOutcome], stack: devstack.Stack) -> None:
    from tutormax_ops.core.config import load_settings
    from tutormax_ops.core.notify import EMAIL_MAX_BYTES

    artifacts = load_settings().storage.artifacts_uri()
    print("\n=== TutorMax Ops demo summary ===")
    for outcome in outcomes:
        print(
            f"  {outcome.dag_id:<32} {outcome.state:<10} {outcome.seconds:6.1f} s   log: {outcome.log_path}"
        )
    print(f"  reports and artifacts: {artifacts}")
    for report in sorted(Path(urlsplit(artifacts).path).glob("*/*/report.html")):
        print(f"    {report}")
    maildir = stack.endpoints.maildir
    if maildir:
        emails = sorted(maildir.glob("*.eml"))
        print(f"  emails ({len(emails)}): {maildir}")
        for email in emails:
            print(f"    {email.name}  {email.stat().st_size / 1024:,.0f} KB")
        if emails:
            largest = max(emails, key=lambda email: email.stat().st_size)
            print(
                f"  largest email: {largest.stat().st_size / 1024:,.0f} KB ({largest.name}); "
                f"limit {EMAIL_MAX_BYTES // 1024} KB"
            )
    else:
        print("  emails: sent to the SMTP server in TUTORMAX_SMTP_URL")
    print(f"  service logs: {stack.log_dir}")


def standalone() -> int:
    """`airflow standalone` against the stack, until a signal."""
    progress = Progress()
    with signals_raise():
        try:
            stack, env = prepare(progress)
        except KeyboardInterrupt:
            return 130
        try:
            port = int(os.environ.get("AIRFLOW__API__PORT") or UI_PORT)
            server = launch_airflow(
                DEMO_STATE / "airflow_home", port=port, host=UI_HOST, log_dir=stack.log_dir, env=env
            )
            stack.processes.append(server.managed)
            progress.step(
                f"airflow standalone: UI on http://localhost:{port} (Ctrl-C stops it and the stack)"
            )
            progress.step(f"  login: {ADMIN}, password in {server.home / PASSWORD_FILE}")
            progress.step(f"  its output: {server.managed.log_path}")
            return server.managed.process.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            progress.step("stopping everything the demo started")
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--standalone", action="store_true", help="run `airflow standalone` instead of the DAGs"
    )
    mode.add_argument(
        "--serve",
        action="store_true",
        help="`make serve`: start the servers, print their URLs, write an env file, until stopped",
    )
    args = parser.parse_args()
    if args.serve:
        from tutormax_ops.devstack.serve import serve

        sys.exit(serve())
    if args.standalone:
        sys.exit(standalone())
    sys.exit(demo())


if __name__ == "__main__":
    main()
