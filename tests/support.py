"""Helpers the tests import (`from support import …`); fixtures live in conftest.py."""

from __future__ import annotations

from pathlib import Path


def task_states(dag_run: object) -> dict[str, list[str]]:
    """{task_id: [state per map index]} of a finished DagRun."""
    states: dict[str, list[str]] = {}
    for ti in sorted(dag_run.get_task_instances(), key=lambda ti: (ti.task_id, ti.map_index)):
        states.setdefault(ti.task_id, []).append(str(ti.state))
    return states


def read_emails(maildir: Path) -> list:
    """Every message the SMTP sink stored, parsed, oldest first."""
    from email import policy
    from email.parser import BytesParser

    parser = BytesParser(policy=policy.default)
    return [parser.parsebytes(path.read_bytes()) for path in sorted(maildir.glob("*.eml"))]
