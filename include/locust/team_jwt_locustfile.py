"""The locustfile of `tests/dags/test_byo_jwt_service.py`'s team: it names no request (the run groups
them by route), does not import loop_clock (the run adds it), and authenticates with the headers the
run takes from the `tutormax_api` connection (TUTORMAX_API_HEADERS). The test copies it into the
team's own folder. Run only by the locust CLI, never imported in-process."""

import json
import os
import random

from locust import HttpUser, between, task


class ApiUser(HttpUser):
    wait_time = between(0.05, 0.2)

    def on_start(self):  # not at import: the DAG's plan step loads this file before the ids exist
        self.client.headers.update(json.loads(os.environ["TUTORMAX_API_HEADERS"]))
        with open(os.environ["TUTORMAX_LOCUST_IDS"]) as ids:
            self.ids = json.load(ids)

    @task
    def list_items(self):
        self.client.get("/api/v1/items/")

    @task(4)
    def read_item(self):
        self.client.get(f"/api/v1/items/{random.choice(self.ids)}")
