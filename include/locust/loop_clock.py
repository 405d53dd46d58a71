"""Imported by every locustfile here: refresh gevent's loop clock once Locust has initialised.

`-t 60s` is a `gevent.spawn_later(60, quit)`. libev times it from the loop's cached clock, which
stands still while Locust starts up synchronously (imports, the locustfile, its arguments). The
timer therefore fired early by the whole start-up time: 9.8 s into a `-t 15s` run on a busy 2-core
machine (the log's "Run time limit set" at 00:58:24.433, "--run-time limit reached" at 00:58:34.202).
The `init` event fires just before the timer is set, so refreshing the clock there makes the run
last what it was asked to, however slow the start-up was.
"""

from __future__ import annotations

import gevent

from locust import events


@events.init.add_listener
def _refresh_loop_clock(**_: object) -> None:
    gevent.get_hub().loop.update_now()
