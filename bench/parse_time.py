"""How long our DAG files take to parse, next to trivial DAG files parsed the same way.

Each measurement runs in a fresh interpreter that has already imported Airflow and DagBag, so
only the DAG files' own top-level work is timed, as the parsing process's CPU time: on a busy
machine other processes stretch the wall clock, not the CPU time a parse needs. Two ways:
- the folder: our 7 files in one DagBag against 7 trivial files (imports shared between files);
- each file alone, as the DAG processor parses it, against one trivial file alone.
Runs alternate; each figure is the minimum over the repeats (noise only adds).
Target (issue 24): under 15 ms added per file, each file alone included.

    .venv/bin/python bench/parse_time.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
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
    started = time.process_time()
    bag = DagBag(dag_folder=sys.argv[1])
    elapsed = time.process_time() - started
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
        time_parse(dags_dir, env)  # builds the parse-time settings view once, as the first parse does
        folder: dict[str, list[float]] = {"ours": [], "trivial": []}
        alone: dict[str, list[float]] = {path.stem: [] for path in dag_files} | {"trivial": []}
        for _ in range(args.repeats):
            folder["ours"].append(time_parse(dags_dir, env)[0])
            folder["trivial"].append(time_parse(trivial_dir, env)[0])
            for path in dag_files:
                alone[path.stem].append(time_parse(path, env)[0])
            alone["trivial"].append(time_parse(trivial_dir / "trivial_0.py", env)[0])
    best = {name: min(runs) * 1000 for name, runs in folder.items()}
    added = best["ours"] - best["trivial"]
    trivial_alone = min(alone.pop("trivial")) * 1000
    added_alone = {name: min(runs) * 1000 - trivial_alone for name, runs in alone.items()}
    print(f"dag files: {len(dag_files)}; repeats: {args.repeats} (process CPU ms, minimum of the repeats)")
    for name, runs in folder.items():
        print(f"folder, {name:8} {best[name]:8.1f} ms  (runs: {', '.join(f'{s * 1000:.0f}' for s in runs)})")
    print(f"folder: added by our top-level code {added:.1f} ms, {added / len(dag_files):.1f} ms per file")
    print(f"one trivial file alone: {trivial_alone:.1f} ms; each of ours alone, added:")
    for name, ms in added_alone.items():
        print(f"  {name:32} {ms:6.1f} ms")
    worst = max(added_alone.values())
    print(
        f"target: under 15 ms added per file -> {'met' if max(worst, added / len(dag_files)) < 15 else 'NOT met'}"
    )
    print(
        json.dumps(
            {
                "added_parse_ms": round(added, 1),
                "added_parse_ms_per_file": round(added / len(dag_files), 1),
                "worst_file_alone_added_ms": round(worst, 1),
                "dag_files": len(dag_files),
                "clock": "process_cpu_min",
            }
        )
    )


if __name__ == "__main__":
    main()
