"""A starting point for load-testing your own JSON API: every route from config, no code to edit.

Copy it (or point a profile at it) and describe the traffic in the profile's settings:

    loadtest:
      profiles:
        nightly:
          users: 50
          spawn_rate: 10
          run_time_s: 300
          locustfile: json_api_locustfile.py      # or /srv/myservice/loadtest/locustfile.py
          think_time_s: [0.5, 2.0]                # seconds between one user's requests
          ids:                                    # what {id} is filled with
            sql: "SELECT id FROM items ORDER BY updated_at DESC LIMIT %(limit)s"
            sql_params: {limit: 500}              # or: values: [1, 2, 3]
          options:
            routes:
              - {path: "/api/v1/items/", weight: 5, tags: [read]}
              - {path: "/api/v1/items/{id}", weight: 10, tags: [read]}
              - {method: POST, path: "/api/v1/items/{id}/views", json: {source: loadtest}, weight: 1,
                 tags: [write], expect: [200, 201]}

- **Routes.** Each is one Locust task: `method` (GET by default), `path` with an optional `{id}`,
  an optional `json` body, a `weight` (how often, relative to the others), `tags` (a profile's `tags`
  then runs only those) and `expect`, the status codes that count as success (by default any 2xx).
  Every request is named by its route template, so Locust's figures group per endpoint, whatever the
  id.
- **Ids.** The DAG runs the profile's `ids.sql` on `tutormax_db` (read-only, bound parameters) or
  takes `ids.values`, before the load, and hands them over in a file (`TUTORMAX_LOCUST_IDS`); this
  file never sees a database or a credential. A route with `{id}` picks one at random per request.
- **Think time.** `TUTORMAX_LOCUST_THINK_TIME="min,max"`, from the profile's `think_time_s` (else
  `loadtest.think_time_s`); `0,0` removes it.
- **Headers.** `options.headers` are sent with every request (no secrets: the profile is config, and
  config is logged).
- **Credentials.** Never in YAML: they come from the `tutormax_api` connection (its extra's `auth`,
  see the README). When the load test's host is that connection's, the run gives Locust
  `TUTORMAX_API_HEADERS` (a JSON object: `Authorization: Bearer …` from a static token or from the
  task's one login request), `TUTORMAX_API_LOGIN` and `TUTORMAX_API_PASSWORD` (the connection's own,
  for a locustfile that logs each user in itself). This file sends `TUTORMAX_API_HEADERS` with every
  request.

Run only by the locust CLI (`tutormax_ops.loadtest` does): importing locust gevent-patches the
process that imports it.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from typing import Any

import loop_clock  # noqa: F401  (makes -t last what it says)
import server_time  # noqa: F401  (records the service's X-Response-Time, where it sends one)

from locust import FastHttpUser, between, constant, tag

OPTIONS_ENV = "TUTORMAX_LOCUST_OPTIONS"
IDS_ENV = "TUTORMAX_LOCUST_IDS"
THINK_TIME_ENV = "TUTORMAX_LOCUST_THINK_TIME"
CREDENTIAL_HEADERS_ENV = "TUTORMAX_API_HEADERS"

OPTIONS: dict[str, Any] = json.loads(os.environ.get(OPTIONS_ENV) or "{}")


_ids: list[Any] = []


def ids() -> list[Any]:
    """The ids file, read on first use: the DAG writes it after checking this file, just before the load."""
    if not _ids:
        with open(os.environ[IDS_ENV]) as handle:
            _ids.extend(json.load(handle))
    return _ids


def _think_time() -> Callable[[Any], float]:
    low, high = (float(part) for part in os.environ.get(THINK_TIME_ENV, "0.5,1.5").split(","))
    return constant(0) if high <= 0 else between(low, high)


def _route_task(route: dict[str, Any]) -> Callable[[FastHttpUser], None]:
    """One Locust task for one configured route, named by its template."""
    method = str(route.get("method", "GET")).upper()
    template = str(route["path"])
    body = route.get("json")
    expected = {int(code) for code in route.get("expect", ())}
    if "{id}" in template and IDS_ENV not in os.environ:
        raise ValueError(f"route {template} needs ids: give the profile `ids` (sql or values)")

    def request(user: FastHttpUser) -> None:
        path = template.replace("{id}", str(random.choice(ids()))) if "{id}" in template else template
        with user.client.request(method, path, name=template, json=body, catch_response=True) as response:
            ok = response.status_code in expected if expected else 200 <= response.status_code < 300
            if not ok:
                response.failure(f"{method} {template} answered {response.status_code}")

    request.__name__ = f"{method.lower()} {template}"
    tags = route.get("tags") or ()
    return tag(*tags)(request) if tags else request


def _tasks() -> dict[Callable[[FastHttpUser], None], int]:
    routes = OPTIONS.get("routes") or []
    if not routes:
        raise ValueError(f"no routes: give the profile `options.routes` ({OPTIONS_ENV} is {OPTIONS!r})")
    return {_route_task(route): int(route.get("weight", 1)) for route in routes}


class JsonApiUser(FastHttpUser):
    """One user of the API: picks a configured route by its weight, then thinks."""

    wait_time = _think_time()
    tasks = _tasks()
    default_headers = {
        **(OPTIONS.get("headers") or {}),
        **json.loads(os.environ.get(CREDENTIAL_HEADERS_ENV) or "{}"),
    }
