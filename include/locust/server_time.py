"""Kept for locustfiles that `import server_time`: the service's own time per request
(`X-Response-Time`) is now recorded, per second and per endpoint, by `per_second`, which this
imports. The load test records every locustfile that way even without this import."""

from __future__ import annotations

from per_second import HEADER, SERVER_TIMES_ENV, bucket  # noqa: F401  (registers the recorder)
