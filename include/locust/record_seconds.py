"""Given to every locust by the load test (`-f <locustfile>,record_seconds.py`): records each
request per endpoint and per second (`per_second`), whatever the locustfile imports itself; hands
the run's data from the master to its workers and lets only workers with the master's files join
(`run_data`); makes
`-t` last what it says (`loop_clock`), so a team's own locustfile that never heard of it is not
cut short on a busy machine; and makes SIGINT stop locust.

A file of its own because Locust executes each `-f` file afresh under the file's name: given
`per_second.py` directly, a locustfile that also imports it would register its listeners twice.

The runner stops locust with SIGINT, so that it still writes its report. A locust whose parent
ignores SIGINT (a worker started in the background by a non-interactive shell, or by code that
ignores it) inherits it ignored, and Python leaves it so: locust would run on until the runner's
SIGKILL, without its report. So SIGINT raises KeyboardInterrupt here, as it does in a terminal.
"""

from __future__ import annotations

import signal

import loop_clock  # noqa: F401  (refreshes gevent's clock before the run-time timer is set)
import per_second  # noqa: F401  (registers its listeners on import, once per process)
import run_data  # noqa: F401  (the master's roll call and its data, once per process)

signal.signal(signal.SIGINT, signal.default_int_handler)
