"""The locustfile of `tests/collectors/test_route_names.py`: unnamed requests to id-like paths
(UUIDs, integers, long hex), named ones, and a name that begins with its method, from HttpUser and
FastHttpUser. Run only by the locust CLI, never imported in-process."""

import uuid

from locust.contrib.fasthttp import FastHttpUser

from locust import HttpUser, constant, task


class Unnamed(HttpUser):
    wait_time = constant(0)

    @task
    def browse(self):
        self.client.get(f"/api/v1/items/{uuid.uuid4()}")
        self.client.get(
            f"/api/v1/users/{self.environment.runner.user_count * 1000 + id(self) % 997}/orders?page=2"
        )
        self.client.get(f"/blobs/{uuid.uuid4().hex}")
        self.client.get("/api/v1/items/", name="GET /api/v1/items/")
        self.client.post("/api/v1/items/", name="POST /api/v1/items/")
        self.client.get(f"/api/v1/items/{uuid.uuid4()}", name="one item")


class UnnamedFast(FastHttpUser):
    wait_time = constant(0)

    @task
    def browse(self):
        self.client.get(f"/api/v1/items/{uuid.uuid4()}")
