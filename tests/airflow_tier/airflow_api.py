"""The REST API of the tier's Airflow, as an operator's script uses it: a JWT from `POST /auth/token`,
runs triggered and watched through `/api/v2`. Every wait polls with a deadline and says what it saw."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from airflow_tier.service_proxy import CountingProxy, Seen
from tutormax_ops.core.paths import PROJECT_ROOT
from tutormax_ops.devstack.airflow_server import RunningAirflow

TERMINAL = {"success", "failed"}
POLL_S = 1.0


@dataclass(frozen=True)
class TierService:
    """The tier's own reference service: its database, Redis URL and the proxy in front of it."""

    db_url: str
    redis_url: str = field(repr=False)
    proxy: CountingProxy


@dataclass(frozen=True)
class Unpaused:
    """What unpausing every DAG started, once it all finished: the runs, the Asset events, the
    requests that reached the service and the subjects of the emails sent meanwhile."""

    runs: list[dict]
    events: list[dict]
    requests: list[Seen]
    emails: list[str]


class WaitTimeout(AssertionError):
    """A state was not reached before its deadline; the message holds the last thing seen."""


def wait_for(
    check: Callable[[], Any], *, timeout_s: float, what: str, accept: Callable[[Any], bool] = bool
) -> Any:
    """Poll `check` until `accept` takes its answer (by default: a truthy one); the deadline fails
    with its last answer."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        last = check()
        if accept(last):
            return last
        if time.monotonic() > deadline:
            raise WaitTimeout(f"{what}: not within {timeout_s:.0f} s; last seen: {last!r}")
        time.sleep(POLL_S)


@dataclass
class AirflowApi:
    server: RunningAirflow
    client: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.token = self.server.token()
        self.client = httpx.Client(
            base_url=self.server.base_url + "/api/v2",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        return response.json()

    def dag(self, dag_id: str) -> dict:
        return self.get(f"/dags/{dag_id}")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        response = self.client.patch(f"/dags/{dag_id}", json={"is_paused": paused})
        assert response.status_code == 200, response.text[:500]

    def trigger(self, dag_id: str, conf: dict | None = None) -> dict:
        """`POST /dags/{id}/dagRuns` with no logical date, as a script of the operators sends it."""
        response = self.client.post(
            f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}
        )
        assert response.status_code == 200, (dag_id, response.status_code, response.text[:500])
        return response.json()

    def runs(self, dag_id: str = "~", **params: Any) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns", limit=100, order_by="-run_after", **params)["dag_runs"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, list[str | None]]:
        states: dict[str, list[str | None]] = {}
        for ti in sorted(
            self.task_instances(dag_id, run_id), key=lambda ti: (ti["task_id"], ti["map_index"])
        ):
            states.setdefault(ti["task_id"], []).append(ti["state"])
        return states

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.get(path, deserialize=True)["value"]

    def wait_finished(self, dag_id: str, run_id: str, *, timeout_s: float) -> dict:
        """The run once it is success or failed; a task waiting for a retry ends the wait at once
        (a retry is itself a finding: the run would only fail or succeed minutes later)."""

        def finished() -> dict | None:
            run = self.run(dag_id, run_id)
            if run["state"] in TERMINAL:
                return run
            retrying = [
                ti["task_id"] for ti in self.task_instances(dag_id, run_id) if ti["state"] == "up_for_retry"
            ]
            assert not retrying, (
                f"{dag_id} {run_id}: {retrying} up for retry: {self.task_states(dag_id, run_id)}"
            )
            return None

        return wait_for(finished, timeout_s=timeout_s, what=f"{dag_id} run {run_id} finished")

    def asset_events(self, **params: Any) -> list[dict] | None:
        """Asset events, newest first; None while Airflow 3.3.2 cannot list them: it answers 500 when
        a run an event created is still queued (`created_dagruns[].start_date` null fails its
        response model), so a caller polls on."""
        response = self.client.get(
            "/assets/events", params={"limit": 100, "order_by": "-timestamp", **params}
        )
        if response.status_code == 500:
            return None
        assert response.status_code == 200, (response.status_code, response.text[:500])
        return response.json()["asset_events"]


def dag_ids() -> list[str]:
    """The package's DAGs: one per file under dags/."""
    return sorted(path.stem for path in (PROJECT_ROOT / "dags").glob("tutormax_*.py"))


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
