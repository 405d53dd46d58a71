"""The `stress` profile's load shape: add `step_users` users every `step_seconds`, up to `max_users`,
then stop. Given to locust next to the traffic locustfile (`-f tutormax_locustfile.py,stress_shape.py`)
so that other profiles never pick it up; `tutormax_ops.loadtest` sets its environment variables and
finds the knee in the per-step statistics afterwards (`tutormax_ops.loadtest.stress`).

The per-second response times the analysis cuts into the shape's steps are recorded by
`per_second` (every run has them); the shape adds its start time to that record, from the process
that runs the shape, so each step's p95 comes from that step's own requests, with its sampling
interval: Locust's history rows only give the p95 of its last 10 s.
"""

from __future__ import annotations

import os
import time

import per_second

from locust import LoadTestShape

STEP_USERS_ENV = "TUTORMAX_STRESS_STEP_USERS"
STEP_SECONDS_ENV = "TUTORMAX_STRESS_STEP_SECONDS"
MAX_USERS_ENV = "TUTORMAX_STRESS_MAX_USERS"
SPAWN_RATE_ENV = "TUTORMAX_STRESS_SPAWN_RATE"


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
        if "shape_started_at" not in per_second.META:  # epoch seconds, written with the seconds
            per_second.META["shape_started_at"] = time.time() - elapsed
        if elapsed >= self.total_seconds:
            return None
        step = int(elapsed // self.step_seconds) + 1
        return min(step * self.step_users, self.max_users), self.spawn_rate
