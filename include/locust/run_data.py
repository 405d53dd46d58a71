"""The run's data in every Locust process, handed out by the master; and the master's roll call.

The profile's think time, `options` and ids reach a single locust, and the master, through their
environment (`TUTORMAX_LOCUST_THINK_TIME`, `TUTORMAX_LOCUST_OPTIONS`, `TUTORMAX_LOCUST_IDS`, a
file the DAG wrote). A worker, here or on another host, needs only the locustfiles: when it
connects, it says hello (`tutormax_hello`) with a sha256 of each `-f` file it loaded, and the master
answers with the run's data (`tutormax_run_data`), before it sends the worker any user. A worker
whose files differ from the master's is refused (`tutormax_refused`, naming the files) and quits;
the master logs an error naming it. A worker counts as ready, for `--expect-workers`, only once its
hello matched, so the master starts no load until the expected number of matching workers joined.

The master records the roll call in `workers.json` beside Locust's outputs, each time it changes
and when it quits (`tutormax_ops.loadtest.roster` reads it): who joined, from which host, with how
many requests, who was refused and why, and who connected but never said hello (a worker without
`record_seconds.py`).

Locustfiles read the data through `think_time()`, `options()` and `ids()` (or `wait_time` as their
users' `wait_time`), when the load starts, not on import: a worker has it only after its hello.
`on_data(callback)` runs `callback` when a worker's data arrives (a locustfile whose tasks come from
its options rebuilds them). Imported by `record_seconds.py`, which the load test gives every locust.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust.runners import STATE_RUNNING, MasterRunner, WorkerNodes, WorkerRunner
from per_second import SERVER_TIMES_ENV

from locust import events

THINK_TIME_ENV = "TUTORMAX_LOCUST_THINK_TIME"  # "min,max" seconds
OPTIONS_ENV = "TUTORMAX_LOCUST_OPTIONS"  # the profile's `options`, as JSON
IDS_ENV = "TUTORMAX_LOCUST_IDS"  # a JSON file with the profile's ids, when it names any
HELLO = "tutormax_hello"
RUN_DATA = "tutormax_run_data"
REFUSED = "tutormax_refused"
ROSTER_FILE = "workers.json"
DEFAULT_THINK_TIME = (0.5, 1.5)

log = logging.getLogger("tutormax_run_data")
_data: dict[str, Any] = {}
_callbacks: list[Callable[[dict[str, Any]], None]] = []


def _from_environment() -> dict[str, Any]:
    low, high = (float(part) for part in os.environ.get(THINK_TIME_ENV, "0.5,1.5").split(","))
    return {
        "think_time": [low, high],
        "options": json.loads(os.environ.get(OPTIONS_ENV) or "{}"),
        "ids_file": os.environ.get(IDS_ENV),
    }


_data.update(_from_environment())


def think_time() -> tuple[float, float]:
    low, high = _data.get("think_time") or DEFAULT_THINK_TIME
    return float(low), float(high)


def wait_time(_user: object = None) -> float:
    """A user's `wait_time`: uniform over the run's think time, 0 when it is `0,0`."""
    low, high = think_time()
    return 0.0 if high <= 0 else random.uniform(low, high)


def options() -> dict[str, Any]:
    return _data.get("options") or {}


def ids() -> list[Any]:
    """The profile's ids: the master's, on a worker; else its file, read on first use (the DAG writes
    it after checking the locustfile, just before the load)."""
    if "ids" not in _data:
        path = _data.get("ids_file")
        _data["ids"] = json.loads(Path(path).read_text()) if path else []
    return _data["ids"]


def has_ids() -> bool:
    return bool(_data.get("ids_file") or _data.get("ids"))


def on_data(callback: Callable[[dict[str, Any]], None]) -> None:
    _callbacks.append(callback)


def fingerprint(environment: Any) -> dict[str, str]:
    """sha256 of each `-f` file by its name, the load shape's left out (only the master runs it)."""
    shape_file = None
    if environment.shape_class is not None:
        import inspect

        shape_file = os.path.basename(inspect.getfile(type(environment.shape_class)))
    files = {}
    for path in environment.parsed_locustfiles or ():
        name = os.path.basename(path)
        if name != shape_file and os.path.isfile(path):
            files[name] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return files


def differences(mine: dict[str, str], theirs: dict[str, str]) -> list[str]:
    """What a worker's files lack or change, against the master's."""
    found = [f"{name} missing" for name in sorted(set(mine) - set(theirs))]
    found += [f"{name} differs" for name in sorted(set(mine) & set(theirs)) if mine[name] != theirs[name]]
    found += [f"{name} not on the master" for name in sorted(set(theirs) - set(mine))]
    return found


class _MatchingWorkers(WorkerNodes):
    """Locust's worker list, where a worker is ready only once its hello matched the master's files:
    `--expect-workers` and the user dispatch count those alone."""

    def __init__(self, matched: set[str]) -> None:
        super().__init__()
        self.matched = matched

    @property
    def ready(self) -> list[Any]:
        return [node for node in super().ready if node.id in self.matched]


class _RollCall:
    def __init__(self, environment: Any, runner: MasterRunner) -> None:
        self.environment = environment
        self.runner = runner
        self.files = fingerprint(environment)
        self.matched: set[str] = set()
        self.joined: list[dict[str, str]] = []
        self.refused: list[dict[str, str]] = []
        self.connected: list[str] = []
        self.requests: dict[str, int] = {}  # per worker, from its stats reports
        gated = _MatchingWorkers(self.matched)
        for client_id, node in runner.clients._worker_nodes.items():
            gated[client_id] = node
        runner.clients = gated
        matched = self.matched

        class MatchingDispatcher(environment.dispatcher_class):  # type: ignore[name-defined]
            """A worker that connects during the load gets users only once its hello matched."""

            def add_worker(self, worker_node: Any) -> None:
                if worker_node.id in matched:
                    super().add_worker(worker_node)

        environment.dispatcher_class = MatchingDispatcher
        runner.register_message(HELLO, self.hello)
        environment.events.worker_connect.add_listener(self.connect)
        environment.events.worker_report.add_listener(self.report)
        environment.events.quitting.add_listener(self.write)
        self.write()

    def connect(self, client_id: str, **_: object) -> None:
        self.connected.append(client_id)
        self.write()

    def report(self, client_id: str, data: dict[str, Any], **_: object) -> None:
        # Each report holds the requests since the previous one.
        self.requests[client_id] = self.requests.get(client_id, 0) + data["stats_total"]["num_requests"]

    def hello(self, environment: Any, msg: Any, **_: object) -> None:
        worker, host = msg.node_id, str(msg.data.get("host", "?"))
        problems = differences(self.files, msg.data.get("files") or {})
        if problems:
            reason = f"its locustfiles are not the master's: {', '.join(problems)}"
            log.error("worker %s on %s refused: %s", worker, host, reason)
            self.refused.append({"id": worker, "host": host, "reason": reason})
            if worker in self.runner.clients:
                del self.runner.clients[worker]
            self.runner.send_message(REFUSED, {"reason": reason}, client_id=worker)
        else:
            # The data goes first: the worker gets no user before it (one connection, in order).
            data = {"think_time": list(think_time()), "options": options(), "ids": ids()}
            self.runner.send_message(RUN_DATA, data, client_id=worker)
            self.matched.add(worker)
            self.joined.append({"id": worker, "host": host})
            self._join_the_load(worker)
            log.info("worker %s on %s joined with the master's locustfiles", worker, host)
        self.write()

    def _join_the_load(self, worker: str) -> None:
        """A worker matched while the load runs gets its share, as Locust gives a late worker one."""
        dispatcher = self.runner._users_dispatcher
        if dispatcher is None or worker not in self.runner.clients:
            return
        dispatcher.add_worker(self.runner.clients[worker])
        if not dispatcher.dispatch_in_progress and self.runner.state == STATE_RUNNING:
            self.runner.start(self.runner.target_user_count, self.runner.spawn_rate)

    def write(self, **_: object) -> None:
        folder = os.environ.get(SERVER_TIMES_ENV)
        if not folder:
            return
        heard = {worker["id"] for worker in (*self.joined, *self.refused)}
        roster = {
            "master_host": socket.gethostname(),
            "expected": getattr(self.environment.parsed_options, "expect_workers", None),
            "locustfile": self.files,
            "joined": [{**worker, "requests": self.requests.get(worker["id"], 0)} for worker in self.joined],
            "refused": self.refused,
            "silent": [worker for worker in self.connected if worker not in heard],
        }
        (Path(folder) / ROSTER_FILE).write_text(json.dumps(roster))


def _receive(environment: Any, msg: Any, **_: object) -> None:
    _data.clear()
    _data.update(msg.data)
    for callback in _callbacks:
        callback(_data)


def _refused(environment: Any, msg: Any, **_: object) -> None:
    log.error("the master refused this worker: %s", msg.data["reason"])
    environment.process_exit_code = 1
    environment.runner.quit()


@events.init.add_listener
def _roll_call(environment: Any, runner: Any = None, **_: object) -> None:
    if isinstance(runner, MasterRunner):
        _RollCall(environment, runner)
    elif isinstance(runner, WorkerRunner):
        runner.register_message(RUN_DATA, _receive)
        runner.register_message(REFUSED, _refused)
        runner.send_message(HELLO, {"files": fingerprint(environment), "host": socket.gethostname()})
