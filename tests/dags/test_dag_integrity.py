"""Rules every DAG in dags/ must follow, checked on a real DagBag parse."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tutormax_ops.core.dag_policy import ALLOWED_TAGS, START_DATE
from tutormax_ops.core.paths import PROJECT_ROOT

DAGS_DIR = PROJECT_ROOT / "dags"
DAG_FILES = sorted(path for path in DAGS_DIR.glob("*.py"))
DOC_SECTIONS = ("Purpose", "Schedule", "Params", "Outputs", "On failure")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_dags_import_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) == len(DAG_FILES) > 0


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda path: path.stem)
def test_file_name_is_the_dag_id(dagbag, dag_file: Path) -> None:
    dag_ids = [dag_id for dag_id, dag in dagbag.dags.items() if Path(dag.fileloc) == dag_file]
    assert dag_ids == [dag_file.stem]
    assert dag_file.stem.startswith("tutormax_")


def test_every_dag_follows_the_team_rules(dagbag) -> None:
    problems = []
    for dag_id, dag in dagbag.dags.items():
        if not set(dag.tags) or not set(dag.tags) <= ALLOWED_TAGS:
            problems.append(f"{dag_id}: tags {sorted(dag.tags)} not within {sorted(ALLOWED_TAGS)}")
        if dag.catchup:
            problems.append(f"{dag_id}: catchup must be False")
        if dag.start_date != START_DATE:
            problems.append(f"{dag_id}: start_date must be the fixed {START_DATE}")
        missing = [section for section in DOC_SECTIONS if f"### {section}" not in (dag.doc_md or "")]
        if missing:
            problems.append(f"{dag_id}: doc_md lacks sections {missing}")
        for task in dag.tasks:
            if not task.owner or task.owner == "airflow":
                problems.append(f"{dag_id}.{task.task_id}: no owner")
            if task.retries < 1:
                problems.append(f"{dag_id}.{task.task_id}: retries < 1")
            if not task.on_failure_callback:
                problems.append(f"{dag_id}.{task.task_id}: no failure notifier")
    assert problems == []


_PARSE = textwrap.dedent(
    """
    import json, sys
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dags)}))
    """
)


def _parse_dags_with_connections_at(port: int, tmp_path: Path) -> dict:
    address = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "AIRFLOW_CONN_TUTORMAX_DB": f"postgres://nobody:secret@{address}/tutormax",
        "AIRFLOW_CONN_TUTORMAX_RESULTS": f"postgres://nobody:secret@{address}/tutormax",
        "AIRFLOW_CONN_TUTORMAX_REDIS": f"redis://{address}/0",
        "AIRFLOW_CONN_TUTORMAX_API": f"http://{address}",
        "AIRFLOW_CONN_SMTP_DEFAULT": f"smtp://{address}",
        # A metadata database that does not exist: a query at parse time would fail or create it.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'absent' / 'airflow.db'}",
    }
    completed = subprocess.run(
        [sys.executable, "-c", _PARSE, str(DAGS_DIR)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert not (tmp_path / "absent").exists(), "parsing touched the metadata database"
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_dags_parse_with_every_connection_at_a_closed_port(tmp_path: Path) -> None:
    report = _parse_dags_with_connections_at(9, tmp_path)  # discard port: nothing listens there
    assert report == {"errors": {}, "dags": sorted(path.stem for path in DAG_FILES)}


def test_parsing_dags_opens_no_connection(tmp_path: Path) -> None:
    """A listening tripwire catches connects from C clients (libpq, hiredis) that Python hooks cannot see."""
    with socket.socket() as tripwire:
        tripwire.bind(("127.0.0.1", 0))
        tripwire.listen(64)
        report = _parse_dags_with_connections_at(tripwire.getsockname()[1], tmp_path)
        tripwire.setblocking(False)
        accepted = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                tripwire.accept()[0].close()
                accepted += 1
    assert report["errors"] == {}
    assert accepted == 0


def _type_list(param) -> list[str]:
    declared = param.schema.get("type", [])
    return [declared] if isinstance(declared, str) else list(declared)


def test_every_trigger_form_is_submittable_with_its_defaults(dagbag) -> None:
    """The UI's form treats a field whose default is empty and whose type lacks "null" as required and
    empty, and keeps its Trigger button disabled; a field without a title shows its raw key."""
    problems = []
    for dag_id, dag in dagbag.dags.items():
        dag.params.validate()  # every default is valid
        for key, param in dag.params.items():
            if param.value in (None, "") and "null" not in _type_list(param):
                problems.append(
                    f"{dag_id}.{key}: default {param.value!r} but type {param.schema.get('type')}"
                )
            if not param.schema.get("title"):
                problems.append(f"{dag_id}.{key}: no title")
    assert problems == []


def _refusal(dagbag, dag_id: str, key: str, value) -> str:
    """What Airflow says when a trigger (the form, the REST API, dag.test) gives `key` this value."""
    import copy

    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags[dag_id].params)
    with pytest.raises(ParamValidationError) as refused:
        params[key] = value
    return str(refused.value)


def test_documented_limits_are_in_the_params_schema(dagbag) -> None:
    from tutormax_ops.core.config import load_settings

    settings = load_settings()
    max_users = settings.loadtest.max_users
    assert "param users" in _refusal(dagbag, "tutormax_load_test", "users", max_users + 1)
    prefix = settings.cache_clear.key_prefix
    assert "param pattern" in _refusal(dagbag, "tutormax_cache_clear", "pattern", "session:*")
    assert "param pattern" in _refusal(dagbag, "tutormax_cache_clear", "pattern", "*" + prefix)
    assert "param targets" in _refusal(dagbag, "tutormax_cache_warming", "targets", ["no_such_target"])
    # ... and what they allow still passes.
    params = dagbag.dags["tutormax_load_test"].params
    params.get_param("users").resolve(value=max_users)
    dagbag.dags["tutormax_cache_clear"].params.get_param("pattern").resolve(value=f"{prefix}dashboard:*")
    names = [target.name for target in settings.cache_warm.targets]
    dagbag.dags["tutormax_cache_warming"].params.get_param("targets").resolve(value=names)


def test_every_dag_says_what_unpausing_does(dagbag) -> None:
    missing = [dag_id for dag_id, dag in dagbag.dags.items() if "Unpausing" not in (dag.doc_md or "")]
    assert missing == []


_PARSE_IMPORTS = textwrap.dedent(
    """
    import json, sys
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    heavy = sorted(name for name in ("tutormax_ops.core.config",) if name in sys.modules)
    print(json.dumps({"errors": len(bag.import_errors), "heavy": heavy}))
    """
)


def test_once_the_settings_view_is_stored_parsing_builds_no_settings_model() -> None:
    """The DAG processor parses every file every 30 s: the config's YAML is read and the settings
    model built only when a source changed (the first parse below). Airflow imports yaml itself."""

    def parse() -> dict:
        completed = subprocess.run(
            [sys.executable, "-c", _PARSE_IMPORTS, str(DAGS_DIR)], capture_output=True, text=True, timeout=300
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        return json.loads(completed.stdout.strip().splitlines()[-1])

    parse()
    assert parse() == {"errors": 0, "heavy": []}
