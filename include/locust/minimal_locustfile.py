"""The reference for the harness-capacity benchmark (`bench/loadtest.py`): the least a Locust test
can do per request, one FastHttpUser GET with no think time and no logic. It refreshes gevent's
clock as the TutorMax locustfile does (`loop_clock`), so both run the whole `-t`: otherwise its
start-up CPU would weigh on fewer requests, and the ratio would flatter ours."""

from __future__ import annotations

import loop_clock  # noqa: F401

from locust import FastHttpUser, constant, task


class MinimalUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def health(self) -> None:
        self.client.get("/health")
