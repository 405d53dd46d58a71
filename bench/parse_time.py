"""How long our DAG files take to parse, next to the same number of trivial DAG files.

Each measurement runs in a fresh interpreter that has already imported Airflow and DagBag, so
only the DAG files' own top-level work is timed. Runs alternate between the two folders.
Target (issue 2): our top-level code adds less than 100 ms in total.

    .venv/bin/python bench/parse_time.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from tutormax_ops.devstack.stack import airflow_environment  # noqa: E402

TRIVIAL_DAG = textwrap.dedent(
    """
    from __future__ import annotations

    import pendulum
    from airflow.sdk import dag, task


    @dag(dag_id="{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
    def trivial() -> None:
        @task
        def noop() -> None:
            return None

        noop()


    trivial()
    """
)

TIMED_PARSE = textwrap.dedent(
    """
    import json, sys, time
    from airflow.dag_processing.dagbag import DagBag
    started = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    elapsed = time.perf_counter() - started
    assert not bag.import_errors, bag.import_errors
    print(json.dumps({"seconds": elapsed, "dags": len(bag.dags)}))
    """
)


def time_parse(folder: Path, env: dict[str, str]) -> tuple[float, int]:
    completed = subprocess.run(
        [sys.executable, "-c", TIMED_PARSE, str(folder)], env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return result["seconds"], result["dags"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    dags_dir = ROOT / "dags"
    dag_files = sorted(dags_dir.glob("tutormax_*.py"))
    with tempfile.TemporaryDirectory() as scratch:
        trivial_dir = Path(scratch) / "trivial"
        trivial_dir.mkdir()
        for index in range(len(dag_files)):
            (trivial_dir / f"trivial_{index}.py").write_text(TRIVIAL_DAG.format(dag_id=f"trivial_{index}"))
        env = {**os.environ, **airflow_environment(Path(scratch) / "airflow_home")}
        ours, trivial = [], []
        for _ in range(args.repeats):
            ours.append(time_parse(dags_dir, env)[0])
            trivial.append(time_parse(trivial_dir, env)[0])
    ours_ms, trivial_ms = statistics.median(ours) * 1000, statistics.median(trivial) * 1000
    print(
        f"dag files: {len(dag_files)}; repeats: {args.repeats} (medians, each parse in a fresh interpreter)"
    )
    print(f"ours:    {ours_ms:8.1f} ms  (runs: {', '.join(f'{s * 1000:.0f}' for s in ours)})")
    print(f"trivial: {trivial_ms:8.1f} ms  (runs: {', '.join(f'{s * 1000:.0f}' for s in trivial)})")
    print(f"added by our top-level code: {ours_ms - trivial_ms:.1f} ms (target < 100 ms)")
    print(json.dumps({"added_parse_ms": round(ours_ms - trivial_ms, 1), "dag_files": len(dag_files)}))


if __name__ == "__main__":
    main()
