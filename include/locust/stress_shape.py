"""The `stress` profile's load shape: add `step_users` users every `step_seconds`, up to `max_users`,
then stop. Given to locust next to the traffic locustfile (`-f tutormax_locustfile.py,stress_shape.py`)
so that other profiles never pick it up; `tutormax_ops.loadtest` sets its environment variables and
finds the knee in the per-step statistics afterwards (`tutormax_ops.loadtest.stress`).

Besides the shape, every process that runs users keeps a histogram of Locust's response times per
wall-clock second, in Locust's buckets, and writes it when it quits to
`$TUTORMAX_LOCUST_SERVER_TIMES/stress_seconds-<pid>.json`, with the shape's start time from the
process that ran the shape. The analysis cuts the seconds into the shape's steps, so each step's
p95 comes from that step's own requests, with its sampling interval: Locust's history rows only give
the p95 of its last 10 s.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict
from pathlib import Path

from server_time import SERVER_TIMES_ENV, bucket

from locust import LoadTestShape, events

STEP_USERS_ENV = "TUTORMAX_STRESS_STEP_USERS"
STEP_SECONDS_ENV = "TUTORMAX_STRESS_STEP_SECONDS"
MAX_USERS_ENV = "TUTORMAX_STRESS_MAX_USERS"
SPAWN_RATE_ENV = "TUTORMAX_STRESS_SPAWN_RATE"

_seconds: defaultdict[int, Counter[int]] = defaultdict(Counter)
_shape_started_at: list[float] = []  # the shape's start, epoch seconds; set where the shape runs


class StepLoadShape(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()
        self.step_users = int(os.environ[STEP_USERS_ENV])
        self.step_seconds = float(os.environ[STEP_SECONDS_ENV])
        self.max_users = int(os.environ[MAX_USERS_ENV])
        self.spawn_rate = float(os.environ[SPAWN_RATE_ENV])
        steps = -(-self.max_users // self.step_users)  # ceiling division: the last step may be partial
        self.total_seconds = steps * self.step_seconds

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        if not _shape_started_at:
            _shape_started_at.append(time.time() - elapsed)
        if elapsed >= self.total_seconds:
            return None
        step = int(elapsed // self.step_seconds) + 1
        return min(step * self.step_users, self.max_users), self.spawn_rate


@events.request.add_listener
def _record(response_time: float | None = None, **_: object) -> None:
    # Failed requests too: Locust's own percentiles count them.
    if response_time is not None:
        _seconds[int(time.time())][bucket(response_time)] += 1


@events.quitting.add_listener
def _write(**_: object) -> None:
    folder = os.environ.get(SERVER_TIMES_ENV)
    if folder and (_seconds or _shape_started_at):
        payload = {
            "shape_started_at": _shape_started_at[0] if _shape_started_at else None,
            "seconds": {second: dict(counts) for second, counts in _seconds.items()},
        }
        (Path(folder) / f"stress_seconds-{os.getpid()}.json").write_text(json.dumps(payload))
