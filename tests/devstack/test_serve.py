"""`make serve` as the README prints it: URLs with masked passwords, a 0600 env file that `source`
turns into a shell where `airflow dags test` runs against the self-started servers."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tutormax_ops.core.paths import PROJECT_ROOT
from tutormax_ops.devstack.passwords import forms
from tutormax_ops.devstack.serve import ENV_FILE_NAME, masked


def test_masked_hides_only_the_password() -> None:
    assert masked("postgresql://ops:s3cr%2Fet@db:5432/app") == "postgresql://ops:***@db:5432/app"
    assert masked("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert masked("http://127.0.0.1:8000") == "http://127.0.0.1:8000"


def wait_for_line(process: subprocess.Popen[str], marker: str, timeout_s: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"serve exited ({process.poll()}) before {marker!r}:\n{''.join(lines)}")
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} within {timeout_s} s:\n{''.join(lines)}")


def test_serve_prints_masked_urls_and_an_env_file_airflow_dags_test_uses(tmp_path: Path) -> None:
    state = PROJECT_ROOT / ".tutormax" / f"serve-test-{os.getpid()}"
    env = {
        **os.environ,
        "PYTHONPATH": f"{PROJECT_ROOT / 'plugins'}:{PROJECT_ROOT / 'include'}",
        "TUTORMAX_SERVE_STATE": str(state),
        "TUTORMAX_DEMO_DAYS": "1",
        "TUTORMAX_DEMO_SESSIONS_PER_DAY": "200",
    }
    for name in ("TUTORMAX_DB_URL", "TUTORMAX_REDIS_URL", "TUTORMAX_API_URL", "TUTORMAX_SMTP_URL"):
        env.pop(name, None)
    serve = subprocess.Popen(
        [sys.executable, "-m", "tutormax_ops.devstack.serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=PROJECT_ROOT,
    )
    try:
        printed = "".join(wait_for_line(serve, "Ctrl-C, SIGTERM", timeout_s=300))
        env_file = state / ENV_FILE_NAME
        assert env_file.stat().st_mode & 0o777 == 0o600
        assert f"env file (passwords inside, mode 0600): {env_file}" in printed
        for conn_id in ("tutormax_db", "tutormax_results", "tutormax_redis", "smtp_default", "tutormax_api"):
            assert re.search(rf"\({conn_id}\)\s+\w+://", printed), conn_id
        assert re.search(r"postgresql://postgres:\*\*\*@127\.0\.0\.1:\d+/tutormax_demo", printed)
        superuser_password = (state / "stack" / "postgres" / "superuser.password").read_text()
        assert not any(form in printed for form in forms(superuser_password))
        exported = env_file.read_text()
        for name in (
            "AIRFLOW_HOME",
            "AIRFLOW__CORE__DAGS_FOLDER",
            "PYTHONPATH",
            "AIRFLOW_CONN_TUTORMAX_DB",
            "AIRFLOW_CONN_TUTORMAX_RESULTS",
            "AIRFLOW_CONN_TUTORMAX_REDIS",
            "AIRFLOW_CONN_TUTORMAX_API",
            "AIRFLOW_CONN_SMTP_DEFAULT",
        ):
            assert f"export {name}=" in exported, name
        # A shell that knows nothing but the env file: no PYTHONPATH, no venv on PATH, another folder.
        dag_test = subprocess.run(
            ["bash", "-c", f"source {env_file} && airflow dags test tutormax_smoke_connectivity"],
            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )
        log = dag_test.stdout + dag_test.stderr
        assert dag_test.returncode == 0, log[-4000:]
        assert re.search(r"DagRun Finished: dag_id=tutormax_smoke_connectivity.*state=success", log), log[
            -4000:
        ]
    finally:
        serve.send_signal(signal.SIGTERM)
        rest, _ = serve.communicate(timeout=120)
    assert serve.returncode == 0, rest
    assert not (state / ENV_FILE_NAME).exists()
    shutil.rmtree(state, ignore_errors=True)
