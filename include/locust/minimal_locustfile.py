"""The reference for the harness-capacity benchmark (`bench/loadtest.py`): the least a Locust test
can do per request, one FastHttpUser GET with no think time and no logic."""

from __future__ import annotations

from locust import FastHttpUser, constant, task


class MinimalUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def health(self) -> None:
        self.client.get("/health")
