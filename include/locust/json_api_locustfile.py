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
  takes `ids.values`, before the load, and hands them over in a file (`TUTORMAX_LOCUST_IDS`) to the
  master, which sends them to each worker (`run_data`); this file never sees a database or a
  credential. A route with `{id}` picks one at random per request.
- **Think time.** `TUTORMAX_LOCUST_THINK_TIME="min,max"`, from the profile's `think_time_s` (else
  `loadtest.think_time_s`); `0,0` removes it.
- **Workers.** A worker, on this host or another, starts with no options: its routes are built when
  the master's data arrives, before it gets any user.
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
import run_data
import server_time  # noqa: F401  (records the service's X-Response-Time, where it sends one)

from locust import FastHttpUser, tag

CREDENTIAL_HEADERS_ENV = "TUTORMAX_API_HEADERS"


def _route_task(route: dict[str, Any]) -> Callable[[FastHttpUser], None]:
    """One Locust task for one configured route, named by its template."""
    method = str(route.get("method", "GET")).upper()
    template = str(route["path"])
    body = route.get("json")
    expected = {int(code) for code in route.get("expect", ())}
    if "{id}" in template and not run_data.has_ids():
        raise ValueError(f"route {template} needs ids: give the profile `ids` (sql or values)")

    def request(user: FastHttpUser) -> None:
        path = (
            template.replace("{id}", str(random.choice(run_data.ids()))) if "{id}" in template else template
        )
        with user.client.request(method, path, name=template, json=body, catch_response=True) as response:
            ok = response.status_code in expected if expected else 200 <= response.status_code < 300
            if not ok:
                response.failure(f"{method} {template} answered {response.status_code}")

    request.__name__ = f"{method.lower()} {template}"
    tags = route.get("tags") or ()
    return tag(*tags)(request) if tags else request


def _tasks(options: dict[str, Any]) -> list[Callable[[FastHttpUser], None]]:
    """One task per route, repeated by its weight, as Locust expands a `tasks` dict."""
    routes = options.get("routes") or []
    if not routes:
        raise ValueError(f"no routes: give the profile `options.routes` (its options are {options!r})")
    return [task for route in routes for task in [_route_task(route)] * int(route.get("weight", 1))]


def _headers(options: dict[str, Any]) -> dict[str, str]:
    return {**(options.get("headers") or {}), **json.loads(os.environ.get(CREDENTIAL_HEADERS_ENV) or "{}")}


class JsonApiUser(FastHttpUser):
    """One user of the API: picks a configured route by its weight, then thinks."""

    wait_time = run_data.wait_time
    # A worker started with no options gets its routes with the master's data (`_configure`).
    tasks = _tasks(run_data.options()) if run_data.OPTIONS_ENV in os.environ else []
    default_headers = _headers(run_data.options())


def _configure(data: dict[str, Any]) -> None:
    JsonApiUser.tasks = _tasks(data["options"])
    JsonApiUser.default_headers = _headers(data["options"])


run_data.on_data(_configure)
