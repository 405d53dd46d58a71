"""The workers of a master-and-workers run, as the master recorded them (`include/locust/run_data.py`
writes `workers.json` beside Locust's outputs each time a worker joins or is refused): who generated
the load for the stress report, and why a run whose workers did not all join sent no load.

Its shape: `{"master_host": ..., "expected": N, "locustfile": {file name: sha256},
"joined": [{"id": ..., "host": ..., "requests": n}], "refused": [{"id": ..., "host": ..., "reason": ...}],
"silent": [ids of workers that connected but never said hello]}`.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from tutormax_ops.loadtest.model import Generators, RunPlan

ROSTER_FILE = "workers.json"


def read_roster(folder: Path) -> dict[str, Any] | None:
    path = folder / ROSTER_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def read_generators(folder: Path, plan: RunPlan) -> Generators:
    """The workers that joined the master, by host; one locust on this machine without a master."""
    roster = read_roster(folder)
    if roster is None or not roster.get("joined"):
        return Generators(processes=max(plan.processes, 1), hosts=(socket.gethostname(),), here=True)
    hosts = tuple(sorted({worker["host"] for worker in roster["joined"]}))
    return Generators(processes=len(roster["joined"]), hosts=hosts, here=roster["master_host"] in hosts)


def missing_workers(roster: dict[str, Any] | None, expected: int) -> str:
    """Why the master started no load: how many workers joined of those expected, and each refused
    one with its reason."""
    joined = len(roster["joined"]) if roster else 0
    text = f"{joined} of {expected} expected Locust workers joined the master"
    refused = roster.get("refused", []) if roster else []
    if refused:
        text += "; refused: " + "; ".join(f"{worker['id']} ({worker['reason']})" for worker in refused)
    silent = roster.get("silent", []) if roster else []
    if silent:
        text += f"; connected without a hello (no record_seconds.py in their -f): {', '.join(silent)}"
    return text
