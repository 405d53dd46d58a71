"""Step 3, `run`: the load with the server-side window around its steady state; every raw output stored."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tutormax_ops.core.config import Settings, load_settings
from tutormax_ops.loadtest.evidence import WaitSampler
from tutormax_ops.loadtest.guard import holding_advisory_lock
from tutormax_ops.loadtest.history import run_row, store_run_rows
from tutormax_ops.loadtest.model import RunPlan
from tutormax_ops.loadtest.runner import RunOutcome, WorkersMissing, run_locust
from tutormax_ops.loadtest.server_metrics import describe_error, server_metrics, take_server_snapshot
from tutormax_ops.loadtest.traffic import IDS_FILE, write_ids

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def execute_run(plan_values: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Run the load with the server-side window around its steady state; store every raw output."""
    from tutormax_ops.core import reports
    from tutormax_ops.core.storage import run_artifacts_dir

    settings = load_settings(with_variable=True)
    plan = RunPlan(**plan_values)
    ti = context["ti"]
    artifacts = run_artifacts_dir(settings.storage.artifacts_uri(), ti.dag_id, ti.run_id)
    with tempfile.TemporaryDirectory(prefix="tutormax-locust-") as tmp, holding_advisory_lock(settings):
        folder = Path(tmp)
        if (count := write_ids(settings, plan.profile, folder)) is not None:
            print(f"{count} ids for the locustfile in {folder / IDS_FILE}")
        started_at = datetime.now(UTC)
        try:
            outcome, metrics = measured_load(plan, settings, folder)
        except BaseException as error:
            _store_files(folder, artifacts)
            _record_interrupted_run(plan, settings, ti.dag_id, ti.run_id, started_at, error, artifacts)
            raise
        _store_files(folder, artifacts)
        (artifacts / "server_metrics.json").write_text(reports.to_json(metrics))
        (artifacts / "cpu_samples.csv").write_text(reports.to_csv([asdict(s) for s in outcome.cpu_samples]))
        outcome_values = {key: value for key, value in asdict(outcome).items() if key != "cpu_samples"}
        (artifacts / "outcome.json").write_text(reports.to_json(outcome_values))
    print(
        f"run stored under {artifacts}: exit codes {outcome.exit_codes}, stopped by {outcome.stopped_by or 'nobody'}"
    )
    return {
        "artifacts_uri": str(artifacts),
        "outcome": json.loads(reports.to_json(outcome_values)),
        "server": {
            key: metrics[key]
            for key in ("window", "cache_hit_rate", "query_p95_ms", "slow_query_rate", "errors")
        },
    }


def measured_load(
    plan: RunPlan, settings: Settings, folder: Path, *, log: Callable[[str], None] = print
) -> tuple[RunOutcome, dict[str, Any]]:
    """Run the load; the server-side figures and evidence cover its steady state (from the moment
    the runner opens the window), or the whole run when the window never opened."""
    snapshots = {"run": take_server_snapshot(settings)}
    samplers = {"run": WaitSampler(settings).start()}

    def open_window() -> None:
        snapshots.setdefault("steady state", take_server_snapshot(settings))
        samplers["run"].stop()  # one sampler at a time: the window's replaces the whole run's
        samplers.setdefault("steady state", WaitSampler(settings).start())

    try:
        outcome = run_locust(plan, settings.loadtest, folder, on_window_open=open_window, log=log)
    finally:
        waits = {window: sampler.stop() for window, sampler in samplers.items()}
    window = "steady state" if "steady state" in snapshots else "run"
    return outcome, server_metrics(snapshots[window], settings, plan.host, window=window, waits=waits[window])


def _store_files(folder: Path, artifacts: ObjectStoragePath) -> None:
    for path in sorted(folder.iterdir()):
        if path.is_file():
            (artifacts / path.name).write_bytes(path.read_bytes())


def _record_interrupted_run(
    plan: RunPlan,
    settings: Settings,
    dag_id: str,
    run_id: str,
    started_at: datetime,
    error: BaseException,
    artifacts: ObjectStoragePath,
) -> None:
    """A killed or timed-out run goes into the history as invalid: it must never count as a pass."""
    reason = f"the run was interrupted ({type(error).__name__}) and locust's process group stopped"
    if isinstance(error, WorkersMissing):
        reason = str(error)
    try:
        store_run_rows(
            settings,
            run_row(
                plan,
                dag_id,
                run_id,
                started_at,
                artifacts,
                valid=False,
                invalid_reason=reason,
                verdict="invalid",
            ),
            [],
        )
    except Exception as storing_error:  # the interruption is the error to raise, not this one
        print(f"could not record the interrupted run: {describe_error('results database', storing_error)}")
