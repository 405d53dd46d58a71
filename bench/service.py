"""Reference service benchmark (issue 16): the service at the baseline profile, against the service
as it was before the issue, measured side by side in the same run.

One self-started stack (PostgreSQL, Redis, two days of production-like data) serves two services:
- `reference`: the service at REFERENCE_REV (exported with `git archive`), started the way
  bench/loadtest.py starts it (1 uvicorn worker);
- `current`: this tree's service, with `--workers` uvicorn workers (default: one per core).
Each has a Redis database of its own, so neither warms the other's cache. Runs alternate
(reference, current, reference, current, ...), so drift in the shared 2-core machine hits both alike.
Every run starts from an empty cache and reset counters, and is headless Locust at the baseline
profile of include/config/tutormax.yaml (its users, spawn rate and think time) through
`tutormax_ops.loadtest.run_locust`: the production flags, the generator's process group sampled
with psutil, and the run validated as the DAG validates it (`validate_run`).

Per run:
- `p95_ms`: Locust's aggregate p95 over the run;
- `cpu_ms_per_request`: user+system CPU of the service's process tree (psutil) from launch to end,
  divided by the requests it served (Locust's requests plus this script's probes);
- `ids_sample_ms`: p95 of GET /api/ids/sample?limit=200 (the locustfile's sample size), probed
  once a second by this script while the users are running.
Figures are medians over the VALID rounds only: an invalid round is printed with its reasons and not
counted. Up to `--extra-rounds` more alternations are run while either service has fewer valid rounds
than `--rounds`; the JSON says how many counted (`valid_rounds`) and whether that was enough
(`enough_valid_rounds`). `cpu_ratio` is current over reference of the median CPU per request; each
round also prints its own ratio against the reference run just before it, and
`cpu_ratio_paired_median` is the median of those ratios over the rounds where both runs were valid. Finally, unless `--no-profile`, one more short run per service
under py-spy (`--gil`: only samples holding the GIL, i.e. Python on a CPU) writes a flame graph
and collapsed stacks to .tutormax/bench/service/, and prints where the CPU goes by layer.

    .venv/bin/python bench/service.py [--run-time 60] [--rounds 3] [--extra-rounds 2] [--workers 2]
                                      [--processes 2] [--no-profile]

The last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import urllib.request
from collections import Counter
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "include")]

# bench/ is this script's folder, first on sys.path.
from servicebench.probes import Prober, host_busy_percent, p95, split_cpu  # noqa: E402
from tutormax_ops.collectors.locust import parse_run  # noqa: E402
from tutormax_ops.core.config import load_settings  # noqa: E402
from tutormax_ops.core.paths import STATE_DIR  # noqa: E402
from tutormax_ops.core.processes import LOOPBACK, ManagedProcess, free_port  # noqa: E402
from tutormax_ops.devstack import stack as devstack  # noqa: E402
from tutormax_ops.loadtest.model import RunPlan  # noqa: E402
from tutormax_ops.loadtest.runner import run_locust  # noqa: E402
from tutormax_ops.loadtest.validity import validate_run  # noqa: E402

# The last commit before issue 16 touched the service.
REFERENCE_REV = "95888b393502cdb75d33fa968072f8956185751d"
SETTINGS = load_settings()
OUT = STATE_DIR / "bench" / "service"
# (layer, substrings of a frame): a sample is charged to the first layer, in this order, that any
# frame of its stack names. Innermost-first would charge a socket write to the asyncio frame that
# made it (the Redis command's send showed up as "event loop"), and the fast path's Redis call to
# the service code around it.
LAYERS = (
    (
        "Redis round trip (client, its socket writes and reads)",
        ("redis/", "Cache._command", "Cache._get_and_count"),
    ),
    ("SQLAlchemy + psycopg (cache misses, writes)", ("sqlalchemy/", "psycopg/")),
    ("response send (uvicorn's writes)", ("RequestResponseCycle.send", "_HeaderHolding")),
    ("JSON serialization", ("json/", "render (starlette")),
    ("validation (pydantic, FastAPI params)", ("pydantic", "request_params_to_args", "_validate_value")),
    ("worker threads (hand-off, loaders' Python)", ("anyio/", "concurrent/", "threading.py", "queue.py")),
    ("HTTP parsing and request set-up (uvicorn, httptools)", ("HttpToolsProtocol", "H11Protocol")),
    ("service code (handlers, fast path, reads)", ("tutormax_service/routes", "fastpath.py", "reads.py")),
    (
        "routing, dependencies, middleware (FastAPI/Starlette)",
        ("starlette/", "fastapi/", "tutormax_service/"),
    ),
    ("event loop (asyncio, uvloop)", ("asyncio/", "uvloop", "selectors.py")),
)


@dataclass
class Service:
    name: str
    url: str
    process: ManagedProcess

    def cpu_seconds(self) -> float:
        root = psutil.Process(self.process.pid)
        total = 0.0
        for proc in (root, *root.children(recursive=True)):
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def post(self, path: str) -> None:
        request = urllib.request.Request(self.url + path, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())


def export_reference(rev: str, into: Path) -> Path:
    """The service's package at `rev`, as a folder to put first on PYTHONPATH."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "include/tutormax_service"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "include"


def baseline_plan(service: Service, run_time_s: int, processes: int) -> RunPlan:
    profile = SETTINGS.profile("baseline")
    return RunPlan(
        "baseline", service.url, profile.users, profile.spawn_rate, run_time_s, processes, "never", "manual"
    )


def measure(service: Service, run_time_s: int, processes: int, folder: Path) -> dict[str, Any]:
    service.post("/api/performance/cache/clear")
    service.post("/api/performance/stats/reset")
    folder.mkdir(parents=True, exist_ok=True)
    plan = baseline_plan(service, run_time_s, processes)
    prober = Prober(service.url)
    cpu_before, host_before = service.cpu_seconds(), psutil.cpu_times()
    outcome = run_locust(plan, SETTINGS.loadtest, folder, on_window_open=prober.start, log=lambda _: None)
    cpu_s, host_after = service.cpu_seconds() - cpu_before, psutil.cpu_times()
    prober.stopped.set()
    if prober.is_alive():
        prober.join(30)
    # The DAG reads the single process's or the master's log: the workers' logs hold no run timer.
    log_text = "".join(
        (folder / f"{role}.log").read_text(errors="replace")
        for role in ("locust", "master")
        if (folder / f"{role}.log").exists()
    )
    run = parse_run(
        csv_prefix=folder / "locust",
        json_path=folder / "locust.json",
        html_path=folder / "locust.html",
        log_text=log_text,
    )
    generator, host = split_cpu(outcome.cpu_samples)
    loadtest = SETTINGS.loadtest
    validity = validate_run(
        run,
        planned_duration_s=plan.planned_duration_s,
        cpu_samples=generator,
        cpu_saturation_percent=loadtest.cpu_saturation_percent,
        host_cpu_samples=host,
        host_saturation_percent=loadtest.host_saturation_percent,
        max_saturated_fraction=loadtest.max_saturated_fraction,
        stall_min_s=loadtest.stall_min_s,
        stall_fraction=loadtest.stall_fraction,
    )
    reasons = list(validity.reasons)
    if outcome.stopped_by:
        reasons.append(f"the runner stopped locust: {outcome.stopped_by}")
    if failed := {role: code for role, code in outcome.exit_codes.items() if code not in (0, None)}:
        reasons.append(f"locust exited with {failed}")
    if prober.errors:
        reasons.append(f"{prober.errors} ids/sample probes failed")
    requests = run.aggregate.requests + len(prober.latencies_ms)
    # Misses (the first read of each entry, and each entry a booking invalidated) cost a database
    # load each, many times a hit: their share explains much of a run's CPU per request.
    cache = service.get_json("/api/performance/cache/stats")
    figures = {
        "p95_ms": run.aggregate.p95_ms,
        "rps": run.aggregate.steady_rps,
        "errors_percent": run.aggregate.error_rate_percent,
        "cpu_ms_per_request": 1000 * cpu_s / requests if requests else None,
        "ids_sample_ms": p95(prober.latencies_ms),
        "generator_cpu_max": max(generator, default=0.0),
        "host_busy_percent": host_busy_percent(host_before, host_after),
        "service_cpu_percent": 100 * cpu_s / (outcome.ended_at - outcome.started_at).total_seconds(),
        "load_average": os.getloadavg()[0],
        "cache_misses": cache["misses"],
        "valid": not reasons,
    }
    verdict = f" INVALID (not counted): {'; '.join(reasons)}" if reasons else ""
    print(
        f"  {service.name:9}: p95 {figures['p95_ms']} ms, {figures['rps'] or 0:.0f} req/s steady, errors "
        f"{figures['errors_percent'] or 0:.2f}%, service CPU {figures['cpu_ms_per_request'] or 0:.3f} ms/request "
        f"({requests} requests, {cache['misses']} cache misses), ids/sample p95 {figures['ids_sample_ms'] or 0:.0f} ms over "
        f"{len(prober.latencies_ms)} probes, busiest locust process max {figures['generator_cpu_max']:.0f}% "
        f"({processes or 1} {'workers' if processes else 'process'}); host CPU {figures['host_busy_percent']:.0f}% "
        f"busy of {psutil.cpu_count()} cores, the service {figures['service_cpu_percent']:.0f}% of one; "
        f"load average {figures['load_average']:.2f}{verdict}",
        flush=True,
    )
    return figures


def flame(service: Service, run_time_s: int, processes: int, folder: Path) -> dict[str, float]:
    """A run under py-spy: `flame_<name>.svg` and `flame_<name>.txt` (collapsed stacks); the share of
    on-CPU samples per layer."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = baseline_plan(service, run_time_s, processes)
    spy = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(service.process.pid), "--subprocesses",
           "--gil", "--nonblocking", "--rate", "50", "--duration", str(run_time_s // 2)]  # fmt: skip
    recorders: list[subprocess.Popen[bytes]] = []

    def record() -> None:
        for fmt, suffix in (("flamegraph", "svg"), ("raw", "txt")):
            argv = [*spy, "--format", fmt, "--output", str(OUT / f"flame_{service.name}.{suffix}")]
            recorders.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    service.post("/api/performance/cache/clear")
    run_locust(plan, SETTINGS.loadtest, folder, on_window_open=record, log=lambda _: None)
    for recorder in recorders:
        recorder.wait(60)
    layers: Counter[str] = Counter()
    for line in (OUT / f"flame_{service.name}.txt").read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        layer = next(
            (name for name, marks in LAYERS if any(mark in frame for frame in frames for mark in marks)),
            "other",
        )
        layers[layer] += int(count)
    total = sum(layers.values()) or 1
    return {layer: round(100 * count / total, 1) for layer, count in layers.most_common()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-time", type=int, default=60, help="seconds per run, ramp-up included")
    parser.add_argument("--rounds", type=int, default=3, help="valid alternations wanted per service")
    parser.add_argument("--extra-rounds", type=int, default=2, help="more alternations for invalid ones")
    parser.add_argument(
        "--workers", type=int, default=len(os.sched_getaffinity(0)), help="uvicorn workers of current"
    )
    parser.add_argument("--processes", type=int, default=2, help="locust workers beside its master")
    parser.add_argument("--reference-rev", default=REFERENCE_REV)
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy runs")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the stack, the services and locust are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    OUT.mkdir(parents=True, exist_ok=True)
    work = OUT / "work"
    shutil.rmtree(work, ignore_errors=True)
    results: dict[str, list[dict[str, Any]]] = {"reference": [], "current": []}
    layers: dict[str, dict[str, float]] = {}
    with devstack.running_stack(work / "stack") as stack:
        db_url, redis_base = stack.endpoints.db_url, stack.endpoints.redis_url.rsplit("/", 1)[0]
        devstack.migrate_service_schema(db_url)
        devstack.load_service_data(db_url, days=2)
        reference_path = export_reference(args.reference_rev, work / "reference")
        services = []
        for name, workers, redis_db, pythonpath in (
            ("reference", 1, 1, [str(reference_path), str(ROOT / "plugins")]),
            ("current", args.workers, 2, [str(ROOT / "include"), str(ROOT / "plugins")]),
        ):
            port = free_port()
            process = devstack.start_reference_service(
                database_url=db_url,
                redis_url=f"{redis_base}/{redis_db}",
                port=port,
                log_dir=work / "logs" / name,
                workers=workers,
                extra_env={"PYTHONPATH": os.pathsep.join(pythonpath)},
            )
            stack.processes.append(process)
            services.append(Service(name, f"http://{LOOPBACK}:{port}", process))
        print(
            f"reference = the service at {args.reference_rev[:10]} with 1 worker; current = this tree with "
            f"{args.workers}; baseline profile, {args.run_time} s per run, locust master + {args.processes} "
            f"workers, {args.rounds} valid rounds wanted (+{args.extra_rounds} spare); load average "
            f"{os.getloadavg()[0]:.2f}",
            flush=True,
        )

        def valid_count(name: str) -> int:
            return sum(run["valid"] for run in results[name])

        round_no = 0
        while round_no < args.rounds + args.extra_rounds and min(map(valid_count, results)) < args.rounds:
            round_no += 1
            print(f"round {round_no}", flush=True)
            for service in services:
                folder = work / f"{service.name}-{round_no}"
                results[service.name].append(measure(service, args.run_time, args.processes, folder))
            reference, current = results["reference"][-1], results["current"][-1]
            if reference["cpu_ms_per_request"] and current["cpu_ms_per_request"] is not None:
                both = "both valid" if reference["valid"] and current["valid"] else "NOT both valid"
                print(
                    f"  round {round_no} CPU ratio current/reference "
                    f"{current['cpu_ms_per_request'] / reference['cpu_ms_per_request']:.3f} ({both})",
                    flush=True,
                )
        if not args.no_profile:
            for service in services:
                folder = work / f"{service.name}-profile"
                layers[service.name] = flame(service, args.run_time, args.processes, folder)
                print(f"  {service.name} on-CPU samples by layer (py-spy --gil): {layers[service.name]}")
            print(f"flame graphs: {OUT}/flame_reference.svg, {OUT}/flame_current.svg")
    shutil.rmtree(work / "stack", ignore_errors=True)

    def median(name: str, key: str) -> float | None:
        values = [run[key] for run in results[name] if run["valid"] and run[key] is not None]
        return round(statistics.median(values), 3) if values else None

    valid_rounds = {name: valid_count(name) for name in results}
    every_run = [run for runs in results.values() for run in runs]
    summary = {
        "baseline_p95_ms": median("current", "p95_ms"),
        "service_cpu_ms_per_request": median("current", "cpu_ms_per_request"),
        "reference_cpu_ms_per_request": median("reference", "cpu_ms_per_request"),
        "cpu_ratio": None,
        "ids_sample_ms": median("current", "ids_sample_ms"),
        "valid_rounds": valid_rounds,
        "rounds_run": round_no,
        "enough_valid_rounds": min(valid_rounds.values()) >= args.rounds,
        "current_workers": args.workers,
        "locust_processes": args.processes,
        "reference": args.reference_rev[:10],
        "reference_baseline_p95_ms": median("reference", "p95_ms"),
        "reference_ids_sample_ms": median("reference", "ids_sample_ms"),
        "host_busy_percent": round(statistics.median(run["host_busy_percent"] for run in every_run), 1),
        "load_average_max": round(max(run["load_average"] for run in every_run), 2),
        "all_runs_valid": all(run["valid"] for run in every_run),
    }
    before, after = summary["reference_cpu_ms_per_request"], summary["service_cpu_ms_per_request"]
    summary["cpu_ratio"] = round(after / before, 3) if before and after is not None else None
    # Each round's current over the reference run just before it, over the rounds where both were
    # valid: drift on the shared machine between rounds cancels out.
    paired = [
        current["cpu_ms_per_request"] / reference["cpu_ms_per_request"]
        for reference, current in zip(results["reference"], results["current"], strict=True)
        if reference["valid"] and current["valid"] and reference["cpu_ms_per_request"]
    ]
    summary["cpu_ratio_paired_median"] = round(statistics.median(paired), 3) if paired else None
    for key in ("baseline_p95_ms", "ids_sample_ms"):
        before, after = summary[f"reference_{key}"], summary[key]
        summary[f"{key}_ratio"] = round(after / before, 3) if before and after is not None else None
    enough = "" if summary["enough_valid_rounds"] else f" — FEWER THAN {args.rounds} VALID ROUNDS"
    print(
        f"current vs reference (medians of valid rounds {valid_rounds}{enough}): p95 "
        f"{summary['baseline_p95_ms']} vs {summary['reference_baseline_p95_ms']} ms (target ≤ 100), CPU "
        f"{summary['service_cpu_ms_per_request']} vs {summary['reference_cpu_ms_per_request']} ms/request, "
        f"ratio {summary['cpu_ratio']} (paired {summary['cpu_ratio_paired_median']}; target ≤ 0.5), ids/sample p95 {summary['ids_sample_ms']} vs "
        f"{summary['reference_ids_sample_ms']} ms (target ≤ 50)"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
