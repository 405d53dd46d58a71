"""Where a maintenance DAG test points its run: a service database, a results database, an artifacts
folder, shared by the end-to-end tests under tests/dags/."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import pytest

from maintenance.catalog import make_table
from tutormax_ops.core.storage import path_segment
from tutormax_ops.maintenance.common import TableRef

DAG_ID = "tutormax_db_maintenance"
BLOATED = TableRef("public", "bloated")
LOCKED = TableRef("public", "locked")
ALL_SUCCESS = {
    task: ["success"]
    for task in (
        "snapshot_before",
        "plan",
        "vacuum",
        "snapshot_after",
        "report",
        "store",
        "notify",
        "outcome",
    )
}


@dataclass(frozen=True)
class Target:
    db_url: str
    results_url: str
    artifacts: Path

    def report(self, dag_run) -> dict:
        return json.loads(self.folder(dag_run).joinpath("report.json").read_text())

    def step(self, dag_run, name: str) -> dict:
        """A step's saved result (compact JSON, gzip-compressed)."""
        return json.loads(
            gzip.decompress(self.folder(dag_run).joinpath("steps", f"{name}.json.gz").read_bytes())
        )

    def folder(self, dag_run) -> Path:
        return self.artifacts / DAG_ID / path_segment(dag_run.run_id)

    def results(self, query: str, run_id: str) -> list[tuple]:
        with psycopg.connect(self.results_url) as conn:
            return conn.execute(query, (run_id,)).fetchall()


def new_target(fresh_database, artifacts: Path) -> Target:
    """A new service database with one bloated table, and a new results database."""
    target = Target(fresh_database("maintenance_dag"), fresh_database("maintenance_results"), artifacts)
    make_table(target.db_url, BLOATED, rows=20_000, deleted_percent=50)
    return target


def point_at(patch: pytest.MonkeyPatch, stack, target: Target) -> Target:
    """AIRFLOW_CONN_* (tutormax_db, tutormax_results, smtp_default) and the artifacts folder for `target`."""
    endpoints = replace(stack.endpoints, db_url=target.db_url, results_url=target.results_url)
    for name, value in endpoints.airflow_env().items():
        patch.setenv(name, value)
    patch.setenv("TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE", target.artifacts.as_uri())
    return target
