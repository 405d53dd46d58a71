"""`python describe_locustfile.py LOCUSTFILE`: the user classes a locustfile defines and the tags
of each one's tasks, as one JSON line, without starting a test (no `test_start`, no request).

Run by the load test's `plan` step as a subprocess, with the environment the run gives the
locustfile, so a missing file, a broken one, an unknown user class or a tag no task carries is told
before anything is sent. Locust's own `--list` names the user classes but not the tags, and a `-T`
tag that no task carries leaves every user idle: a typo would send no request at all.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from locust.util.load_locustfile import load_locustfile


def task_tags(holder: Any) -> set[str]:
    """The tags on `holder`'s tasks, TaskSets' own tags and their nested tasks' included."""
    found: set[str] = set()
    for task in getattr(holder, "tasks", ()):
        found |= set(getattr(task, "locust_tag_set", ()))
        if hasattr(task, "tasks"):
            found |= task_tags(task)
    return found


if __name__ == "__main__":
    user_classes, _ = load_locustfile(sys.argv[1])
    print(json.dumps({name: sorted(task_tags(user)) for name, user in user_classes.items()}))
