"""Given to every locust by the load test (`-f <locustfile>,record_seconds.py`): records each
request per endpoint and per second (`per_second`), whatever the locustfile imports itself.

A file of its own because Locust executes each `-f` file afresh under the file's name: given
`per_second.py` directly, a locustfile that also imports it would register its listeners twice.
"""

from __future__ import annotations

import per_second  # noqa: F401  (registers its listeners on import, once per process)
