"""The locustfile behind the Locust result parser's tests (`tests/collectors/test_locust.py`): one
page that answers and one that 404s, so a real run has both successes and failures to count.
Run only by the locust CLI, never imported in-process."""

from __future__ import annotations

import loop_clock  # noqa: F401  (makes -t last what it says)

from locust import HttpUser, constant, task


class Visitor(HttpUser):
    wait_time = constant(0.05)

    @task(3)
    def index(self) -> None:
        self.client.get("/")

    @task
    def missing(self) -> None:
        self.client.get("/missing")
