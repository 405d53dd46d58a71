"""Locust workers as they run on other hosts: started outside the runner (separate processes, each
in a folder of its own, with nothing of the run: no ids file, no options, no setting, only the
locustfiles and `include/locust/` on their path), they join the master of a DAG run through
`loadtest.remote_workers` and get the run's data from it.

Against the bring-your-own service (tests/byo_service.py), whose request log shows which ids the
workers used: the profile's SQL gives ids 1..100 of its 200 items. Workers on this machine stand for
other hosts; the load they share is checked for evenness from the master's roll call.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_tutormax_load_test_byo import (  # noqa: F401  (fixtures)
    DAG_ID,
    HEALTH_PATH,
    ROUTES,
    Byo,
    Configured,
    byo,
    configured,
    history,
)

from support import task_states
from tutormax_ops.core.paths import LOCUST_DIR
from tutormax_ops.devstack import stack as devstack
from tutormax_ops.loadtest.runner import RECORDER

EVEN_WITHIN = 0.20  # each worker's requests within 20% of an even share


def worker_log(folder: Path) -> str:
    return (folder / "worker.log").read_text()


@pytest.fixture
def remote_worker(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], Path]]]:
    """`remote_worker(name, locustfile, port)`: a locust worker in `tmp_path/name`, its own copy of
    the locustfile there, an environment with only PATH and PYTHONPATH (include/locust/)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, locustfile: Path, port: int) -> tuple[subprocess.Popen[bytes], Path]:
        folder = tmp_path / name
        folder.mkdir()
        copy = folder / "locustfile.py"
        copy.write_bytes(locustfile.read_bytes())
        argv = [sys.executable, "-m", "locust", "-f", f"{copy},{RECORDER}",
                "--worker", "--master-host", devstack.LOOPBACK, "--master-port", str(port)]  # fmt: skip
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(LOCUST_DIR), "HOME": str(folder)}
        with (folder / "worker.log").open("wb") as log:
            process = subprocess.Popen(
                argv, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        started.append(process)
        return process, folder

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


@pytest.fixture
def master_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """The port the run's master binds, known to the workers beforehand, and two workers expected."""
    port = devstack.free_port()
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__MASTER_PORT", str(port))
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__REMOTE_WORKERS", "2")
    return port


def test_remote_workers_get_the_run_from_the_master_and_share_its_load_evenly(
    byo: Byo,  # noqa: F811  (the fixtures imported above)
    configured: Configured,  # noqa: F811
    run_dag,
    remote_worker,
    master_port: int,
) -> None:
    good = [remote_worker(f"host-{index}", configured.locustfile, master_port) for index in (1, 2)]
    changed = configured.locustfile.parent / "changed" / "locustfile.py"
    changed.parent.mkdir()
    changed.write_text(configured.locustfile.read_text() + "\n# edited on one host only\n")
    stale, stale_folder = remote_worker("stale-host", changed, master_port)
    seen_before = len(byo.requests())

    dag_run = run_dag(DAG_ID, run_conf={"notify": "never"})
    assert task_states(dag_run) == {
        name: ["success"] for name in ("plan", "guard", "run", "analyze", "notify", "verdict")
    }
    run, endpoints = history(configured.results_url, dag_run.run_id)
    assert run is not None and run["valid"], run
    assert {row["endpoint"] for row in endpoints} == ROUTES

    # The workers used the ids of the profile's SQL, which only the master had.
    received = Counter(line.split(" ", 1)[1] for line in byo.requests()[seen_before:])
    item_paths = [path for path in received if path.startswith("/api/v1/items/") and path != "/api/v1/items/"]
    assert received[HEALTH_PATH] == 1 and len(item_paths) > 10
    assert {int(path.rsplit("/", 1)[1]) for path in item_paths} <= set(range(1, 101))
    for process, folder in good:
        assert process.wait(60) == 0, worker_log(folder)
        assert not list(folder.glob("ids.json")) and not list(folder.glob("seconds-*.json"))

    # The roll call: the two matching workers joined and shared the load evenly; the edited one was
    # refused, named with the file that differs, and quit with an error.
    folder = Path(run["artifacts_uri"].removeprefix("file://"))
    roster = json.loads((folder / "workers.json").read_text())
    requests = [worker["requests"] for worker in roster["joined"]]
    assert len(requests) == 2 and sum(requests) > 100, roster
    even = sum(requests) / len(requests)
    assert all(abs(count - even) <= EVEN_WITHIN * even for count in requests), requests
    [refused] = roster["refused"]
    assert refused["reason"] == "its locustfiles are not the master's: locustfile.py differs"
    assert stale.wait(60) == 1
    assert "the master refused this worker: its locustfiles are not the master's" in worker_log(stale_folder)
    assert f"worker {refused['id']} on " in (folder / "master.log").read_text()
    # Every request the workers sent reached the master's per-second record, through their reports.
    seconds = sum(
        stats["requests"]
        for path in folder.glob("seconds-*.json")
        for endpoints in json.loads(path.read_text())["seconds"].values()
        for stats in endpoints.values()
    )
    assert seconds == sum(requests)


def test_a_run_whose_workers_never_join_fails_before_any_load_with_the_reason(
    byo: Byo,  # noqa: F811  (the fixtures imported above)
    configured: Configured,  # noqa: F811
    run_dag,
    remote_worker,
    master_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capfd,
) -> None:
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__START_SLACK_S", "10")
    changed = configured.locustfile.parent / "changed" / "locustfile.py"
    changed.parent.mkdir()
    changed.write_text(configured.locustfile.read_text() + "\n# edited on one host only\n")
    stale, _ = remote_worker("stale-host", changed, master_port)  # refused; the others never come
    seen_before = len(byo.requests())

    dag_run = run_dag(DAG_ID, run_conf={"notify": "never"})
    states = task_states(dag_run)
    assert states["run"] == ["failed"] and states["analyze"] == ["upstream_failed"]
    assert {ti.task_id: ti.try_number for ti in dag_run.get_task_instances()}["run"] == 1  # no retry
    assert byo.requests()[seen_before:] == [f"GET {HEALTH_PATH}"]  # the guard's check, and no load
    run, endpoints = history(configured.results_url, dag_run.run_id)
    assert run is not None and not run["valid"] and endpoints == []
    reason = run["invalid_reason"]
    assert reason.startswith("no load was sent: 0 of 2 expected Locust workers joined the master; refused: ")
    assert "(its locustfiles are not the master's: locustfile.py differs)" in reason
    assert "within loadtest.start_slack_s (10 s)" in reason
    output = capfd.readouterr()
    assert f"WorkersMissing: {reason}" in output.out + output.err
    assert stale.wait(60) == 1
