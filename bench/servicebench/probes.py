"""What bench/service.py runs beside each load test: the /api/ids/sample prober (started when the
runner opens its server-side window), and the figures read from the runner's CPU samples."""

from __future__ import annotations

import math
import threading
import time
import urllib.request
from dataclasses import asdict
from typing import Any

from tutormax_ops.loadtest.machine import cpu_by_role

IDS_PATH = "/api/ids/sample?limit=200"  # the locustfile's sample size


class Prober(threading.Thread):
    """GET /api/ids/sample once a second until stopped; keeps the latencies in ms and counts errors."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.latencies_ms, self.errors, self.stopped = url, [], 0, threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url + IDS_PATH, timeout=30) as response:
                    response.read()
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
            except OSError:
                self.errors += 1
            self.stopped.wait(max(0.0, 1.0 - (time.perf_counter() - started)))


def p95(values: list[float]) -> float | None:
    """Nearest rank, as the service's own metrics compute it."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(0.95 * len(ordered))) - 1] if ordered else None


def host_busy_percent(before: Any, after: Any) -> float:
    """Busy share of all cores between two `psutil.cpu_times()`: what the whole machine did, this
    stack and every other process on it."""
    total = sum(after) - sum(before)
    idle = (after.idle + getattr(after, "iowait", 0.0)) - (before.idle + getattr(before, "iowait", 0.0))
    return 100 * (total - idle) / total if total > 0 else 0.0


def split_cpu(samples: Any) -> tuple[list[float], list[float]]:
    """Per tick, the busiest locust process (master or worker) and the whole machine's busy share,
    as the DAG's analysis reads the runner's samples (`machine.cpu_by_role`)."""
    split = cpu_by_role(asdict(sample) for sample in samples)
    return split.generator, split.host
