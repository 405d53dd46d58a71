"""Every request, per endpoint and per wall-clock second, in every Locust process that runs users.

For each whole epoch second and each "METHOD name" it keeps: the requests and failures, Locust's
response times as a histogram in Locust's own buckets (`bucket`), their sum, min and max, and, where
the service sends one, a histogram of its own `X-Response-Time` (its handler's time to the response
start, the seed's "p95 API time"). A worker sends what it recorded with each of Locust's own stats reports
to its master (a worker on another host has no folder of ours), which merges them; the process that
is no worker (a single locust, or the master) writes them when it quits to
`$TUTORMAX_LOCUST_SERVER_TIMES/seconds-<pid>.json`, beside `locust.json`. Riding on Locust's reports,
they are as complete as Locust's own totals, final report included.

Why per second: Locust's JSON keeps one histogram per endpoint for the whole run, ramp-up and
warm-up included, and its history rows only give the p95 of their last 10 s. With seconds, the
analysis judges the steady state alone (`tutormax_ops.collectors.locust_seconds`) and the stress
profile cuts its steps (`tutormax_ops.loadtest.stress`), each with its own sampling interval.

The server's times are kept apart from Locust's statistics (a second statistic per request would
double its totals and throughput). The load test adds `record_seconds.py` to every locust `-f`, so
any locustfile is recorded; a locustfile may also `import per_second` (or `server_time`) itself.
Locust imports each `-f` file afresh under its own name, so this module is never given to `-f`: it
is imported once, and its listeners are registered once, however many files import it.

Requests a locustfile did not name (Locust then names them by their path) are grouped by route
before any statistic sees them: path segments that are integers, UUIDs or long hex strings become
`{id}` and the query string is dropped, so `GET /items/<uuid>` is one endpoint, not one per id. How
many were grouped into which route is written beside the seconds (`grouped_by_route`), for the
report's one note. A request the locustfile named keeps its name.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from locust import events

SERVER_TIMES_ENV = "TUTORMAX_LOCUST_SERVER_TIMES"  # the folder the per-second files go to
HEADER = "X-Response-Time"

# Written beside the seconds: the stress shape's start, from the process that ran the shape.
META: dict[str, Any] = {}
ID_PLACEHOLDER = "{id}"
_ID_SEGMENT = re.compile(
    r"\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{16,}"
)
# "METHOD route" -> how many unnamed requests were grouped into it, in this process.
_grouped: Counter[str] = Counter()


def route_of(path: str) -> str:
    """`path` (or a URL's path) with id-like segments as `{id}` and without its query string."""
    parts = urlsplit(path).path.split("/")
    return "/".join(ID_PLACEHOLDER if _ID_SEGMENT.fullmatch(part) else part for part in parts)


def unnamed(name: str, url: str) -> bool:
    """Whether Locust named the request by its path: no `name=` was given (HttpUser names it by the
    path and query, FastHttpUser by the URL as passed)."""
    return name == url or (name.startswith("/") and url.endswith(name))


def endpoint_key(request_type: str, name: str) -> str:
    """ "METHOD name"; a name that already begins with its method ("POST /items/") is not prefixed again."""
    return name if name.startswith(f"{request_type} ") else f"{request_type} {name}"


_fire = events.request.fire


def _fire_by_route(**request: Any) -> None:
    name, url = request.get("name"), request.get("url")
    if isinstance(name, str) and isinstance(url, str) and unnamed(name, url):
        route = route_of(name)
        if route != name:
            _grouped[endpoint_key(str(request.get("request_type")), route)] += 1
            request["name"] = route
    _fire(**request)


# Every listener (Locust's statistics included) sees the route: each client fires this same hook.
events.request.fire = _fire_by_route  # type: ignore[method-assign]


class _Second:
    __slots__ = ("client", "failures", "max", "min", "requests", "server", "sum")

    def __init__(self) -> None:
        self.requests = 0
        self.failures = 0
        self.sum = 0.0
        self.min: float | None = None
        self.max: float | None = None
        self.client: Counter[int] = Counter()
        self.server: Counter[int] = Counter()

    def add(self, values: dict[str, Any]) -> None:
        """Merge a worker's record of the same second and endpoint (`as_json`'s shape)."""
        self.requests += values["requests"]
        self.failures += values["failures"]
        self.sum += values["sum_ms"]
        if values["min_ms"] is not None:
            self.min = values["min_ms"] if self.min is None else min(self.min, values["min_ms"])
        if values["max_ms"] is not None:
            self.max = values["max_ms"] if self.max is None else max(self.max, values["max_ms"])
        self.client.update({int(bucket): count for bucket, count in values["client"].items()})
        self.server.update({int(bucket): count for bucket, count in values["server"].items()})

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "sum_ms": self.sum,
            "min_ms": self.min,
            "max_ms": self.max,
            "client": dict(self.client),
            "server": dict(self.server),
        }


_seconds: dict[int, dict[str, _Second]] = {}
_keys: dict[tuple[str, str], str] = {}  # (method, name) -> "METHOD name", built once per endpoint


def bucket(milliseconds: float) -> int:
    """Locust's reporting buckets: 1 ms below 100 ms, 10 ms below 1 s, 100 ms below 10 s, then 1 s."""
    digits = 0 if milliseconds < 100 else -1 if milliseconds < 1000 else -2 if milliseconds < 10_000 else -3
    return int(round(milliseconds, digits))


def server_ms(response: Any, exception: Any) -> float | None:
    """The service's own time for a successful request, or None (no header, or one we cannot read)."""
    headers = getattr(response, "headers", None)
    value = headers.get(HEADER) if headers is not None and exception is None else None
    if not value:
        return None
    try:
        return float(value.removesuffix("ms"))
    except ValueError:  # a header we cannot read is no figure; Locust's own time still counts
        return None


@events.request.add_listener
def _record(
    request_type: str,
    name: str,
    response_time: float | None = None,
    response: Any = None,
    exception: Any = None,
    **_: object,
) -> None:
    # Every generator host pays this per request (bench/loadtest.py's capacity ratio): look up
    # before creating, since a `_Second` (two Counters) costs more than the rest of this function.
    at = int(time.time())
    endpoints = _seconds.get(at)
    if endpoints is None:
        endpoints = _seconds[at] = {}
    key = _keys.get((request_type, name))
    if key is None:
        key = _keys[(request_type, name)] = endpoint_key(request_type, name)
    second = endpoints.get(key)
    if second is None:
        second = endpoints[key] = _Second()
    second.requests += 1
    if exception is not None:
        second.failures += 1
    # Failed requests are timed too, as Locust's own percentiles time them; a request without a
    # response time (Locust's "none requests") counts in totals only.
    if response_time is not None:
        second.client[round(response_time) if response_time < 100 else bucket(response_time)] += 1
        second.sum += response_time
        if second.min is None or response_time < second.min:
            second.min = response_time
        if second.max is None or response_time > second.max:
            second.max = response_time
    if (served := server_ms(response, exception)) is not None:
        second.server[round(served) if served < 100 else bucket(served)] += 1


SECONDS_REPORT = "tutormax_seconds"  # the key of a worker's seconds in its stats report
GROUPED_REPORT = "tutormax_grouped_by_route"
_role: dict[str, bool] = {"worker": False}


@events.init.add_listener
def _note_role(environment: Any, **_: object) -> None:
    _role["worker"] = bool(environment.parsed_options and environment.parsed_options.worker)


@events.report_to_master.add_listener
def _report(data: dict[str, Any], **_: object) -> None:
    """The seconds recorded since the last report, handed over and forgotten here."""
    data[SECONDS_REPORT] = {
        str(second): {name: stats.as_json() for name, stats in endpoints.items()}
        for second, endpoints in _seconds.items()
    }
    data[GROUPED_REPORT] = dict(_grouped)
    _seconds.clear()
    _grouped.clear()


@events.worker_report.add_listener
def _merge(data: dict[str, Any], **_: object) -> None:
    for second, endpoints in (data.get(SECONDS_REPORT) or {}).items():
        into = _seconds.setdefault(int(second), {})
        for name, values in endpoints.items():
            into.setdefault(name, _Second()).add(values)
    _grouped.update(data.get(GROUPED_REPORT) or {})


@events.quitting.add_listener
def _write(**_: object) -> None:
    folder = os.environ.get(SERVER_TIMES_ENV)
    if folder and not _role["worker"] and (_seconds or META):
        payload = {
            **META,
            "grouped_by_route": dict(_grouped),
            "seconds": {
                str(second): {name: stats.as_json() for name, stats in endpoints.items()}
                for second, endpoints in sorted(_seconds.items())
            },
        }
        (Path(folder) / f"seconds-{os.getpid()}.json").write_text(json.dumps(payload))
