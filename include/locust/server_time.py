"""Imported by the TutorMax locustfile: the service's own time per request, beside Locust's.

The reference service sends `X-Response-Time: 12.34ms` (its handler's time to the response start),
which is how the seed defines "p95 API time". Each request's value goes into a histogram per
endpoint, in Locust's own buckets, kept apart from Locust's statistics (a second statistic per
request would double its totals and throughput). Every process that ran users writes its
histograms, when it quits, to `$TUTORMAX_LOCUST_SERVER_TIMES/server_times-<pid>.json`: the runner
reads them next to `locust.json`. The difference between the two p95s is time spent outside the
handler: in the generator, on the network, in the service's accept queue.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from locust import events

SERVER_TIMES_ENV = "TUTORMAX_LOCUST_SERVER_TIMES"
HEADER = "X-Response-Time"

_histograms: defaultdict[str, Counter[int]] = defaultdict(Counter)


def bucket(milliseconds: float) -> int:
    """Locust's reporting buckets: 1 ms below 100 ms, 10 ms below 1 s, 100 ms below 10 s, then 1 s."""
    digits = 0 if milliseconds < 100 else -1 if milliseconds < 1000 else -2 if milliseconds < 10_000 else -3
    return int(round(milliseconds, digits))


@events.request.add_listener
def _record(request_type: str, name: str, response: Any = None, exception: Any = None, **_: object) -> None:
    headers = getattr(response, "headers", None)
    value = headers.get(HEADER) if headers is not None and exception is None else None
    if value:
        try:
            _histograms[f"{request_type} {name}"][bucket(float(value.removesuffix("ms")))] += 1
        except ValueError:  # a header we cannot read is no figure; Locust's own time still counts
            return


@events.quitting.add_listener
def _write(**_: object) -> None:
    folder = os.environ.get(SERVER_TIMES_ENV)
    if folder and _histograms:
        path = Path(folder) / f"server_times-{os.getpid()}.json"
        path.write_text(json.dumps({name: dict(counts) for name, counts in _histograms.items()}))
