"""End to end: the maintenance DAG with dag.test() on real PostgreSQL, with the SMTP sink."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import psycopg
import pytest
from psycopg import sql

from maintenance.catalog import WEIRD, dead_tuples, make_partitioned, make_table
from maintenance.targets import ALL_SUCCESS, BLOATED, DAG_ID, LOCKED, Target, new_target, point_at
from support import read_emails, task_states
from tutormax_ops.core.config import load_settings
from tutormax_ops.core.paths import PROJECT_ROOT
from tutormax_ops.devstack.passwords import new_password, with_credentials
from tutormax_ops.maintenance.common import TableRef


def rerun(dag_run, conf: dict):
    """dag.test() again for the same logical date: the same run_id, run once more (what Clear does)."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{DAG_ID}.py")).get_dag(DAG_ID)
    return dag.test(logical_date=dag_run.logical_date, run_after=dag_run.run_after, run_conf=conf)


@dataclass(frozen=True)
class FullRun:
    target: Target
    dag_run: object
    report: dict
    emails: list


@pytest.fixture(scope="module")
def full_run(stack, fresh_database, run_dag, maildir, tmp_path_factory) -> Iterator[FullRun]:
    """One run over a bloated table, a weirdly named one, a clean one, and one another session locks."""
    with pytest.MonkeyPatch.context() as patch:
        target = point_at(patch, stack, new_target(fresh_database, tmp_path_factory.mktemp("artifacts")))
        make_table(target.db_url, WEIRD, rows=4000, deleted_percent=40)
        make_table(target.db_url, TableRef("public", "clean"), rows=1000, deleted_percent=0)
        with psycopg.connect(target.db_url, autocommit=True) as conn:  # like a migration's new index
            conn.execute("CREATE INDEX clean_payload ON public.clean (payload)")
        make_table(target.db_url, LOCKED, rows=4000, deleted_percent=50)
        make_table(target.db_url, RESERVED, rows=1000, deleted_percent=0)
        make_table(target.db_url, OUT_OF_SCOPE, rows=4000, deleted_percent=60)  # a schema the run leaves out
        sent_before = len(read_emails(maildir))
        conf = {"schemas": ["public", "Mixed Case"], "parallel_jobs": 2}
        with psycopg.connect(target.db_url, application_name="long ALTER") as holder:
            holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(LOCKED.identifier))
            dag_run = run_dag(DAG_ID, run_conf=conf)
            holder.rollback()
        yield FullRun(target, dag_run, target.report(dag_run), read_emails(maildir)[sent_before:])


RESERVED = TableRef("public", "select")
OUT_OF_SCOPE = TableRef("archive", "old_events")


def rows_by_name(report: dict) -> dict[str, dict]:
    return {row["name"]: row for row in report["tables"]}


def test_known_bloat_falls_and_the_report_shows_before_and_after(full_run: FullRun) -> None:
    assert str(full_run.dag_run.state) == "success"
    assert task_states(full_run.dag_run) == ALL_SUCCESS
    row = rows_by_name(full_run.report)["public.bloated"]
    assert row["outcome"] == "done"
    assert row["dead_tuples_before"] >= 9000 and row["dead_tuples_after"] == 0
    assert row["last_vacuum_before"] is None and row["last_vacuum_after"] is not None
    assert dead_tuples(full_run.target.db_url, BLOATED) == 0
    assert rows_by_name(full_run.report)["public.clean"]["planned"] is False
    assert full_run.report["totals"]["dead_tuples_removed"] >= 9000 + 1500
    assert full_run.report["totals"]["reusable_bytes"] > 1_000_000  # half of a 2.6 MB heap
    with psycopg.connect(full_run.target.db_url) as conn:
        pg16_or_later = conn.info.server_version >= 160000
    assert full_run.report["database_stats"] == (
        "updated once by VACUUM (ONLY_DATABASE_STATS)"
        if pg16_or_later
        else "updated by each VACUUM (SKIP_DATABASE_STATS needs PostgreSQL 16+)"
    )
    html = full_run.target.folder(full_run.dag_run).joinpath("report.html").read_text()
    assert "public.bloated" in html and "→ 0" in html
    folder = full_run.target.folder(full_run.dag_run)
    assert sorted(p.name for p in folder.iterdir()) == [
        "bloat.png",
        "dead_tuples.png",
        "recommendations.csv",
        "report.html",
        "report.json",
        "steps",
        "tables.csv",
    ]
    assert sorted(p.name for p in (folder / "steps").iterdir()) == [
        "notify.json.gz",
        "outcome.json.gz",
        "plan.json.gz",
        "report.json.gz",
        "snapshot_after.json.gz",
        "snapshot_before.json.gz",
        "vacuum.json.gz",
    ]


def test_a_table_named_mixed_case_with_quotes_is_vacuumed(full_run: FullRun) -> None:
    row = rows_by_name(full_run.report)['"Mixed Case"."we""ird name"']
    assert (row["outcome"], row["dead_tuples_after"]) == ("done", 0)
    assert dead_tuples(full_run.target.db_url, WEIRD) == 0


def test_a_locked_table_is_skipped_not_waited_on(full_run: FullRun) -> None:
    row = rows_by_name(full_run.report)["public.locked"]
    assert row["outcome"] == "skipped_locked"
    assert "lock not available" in row["detail"]
    assert row["duration_s"] < 1
    assert dead_tuples(full_run.target.db_url, LOCKED) >= 1500


def test_a_locked_table_is_named_wherever_it_was_not_inspected(full_run: FullRun) -> None:
    assert full_run.report["not_inspected"] == [
        "public.locked (locked by another session while the snapshot was taken)"
    ]
    html = full_run.target.folder(full_run.dag_run).joinpath("report.html").read_text()
    sections = html.split("<h2>")[1:]
    for title in ("Unused indexes", "Duplicate indexes", "Invalid indexes", "Most bloated indexes"):
        (section,) = [s for s in sections if s.startswith(title)]
        assert "Not inspected here: public.locked" in section, title
        assert '<td colspan="4">None.</td>' not in section and '<td colspan="6">None.</td>' not in section
    assert ">None<" not in html and "<code>None</code>" not in html


def test_what_was_not_looked_at_is_said_with_valid_sql_names(full_run: FullRun) -> None:
    report = full_run.report
    assert [(s["schema"], s["tables"], s["dead_tuples"]) for s in report["other_schemas"]] == [
        ("archive", 1, 2400)
    ]
    row = rows_by_name(report)["public.locked"]
    (holder,) = report["lock_holders"]
    assert (holder["table"], holder["mode"], holder["application_name"]) == (
        "locked",
        "AccessExclusiveLock",
        "long ALTER",
    )
    assert (
        f"held by pid {holder['pid']} (user postgres, application 'long ALTER', AccessExclusiveLock"
        in row["detail"]
    )
    assert 'public."select"' in rows_by_name(report)
    html = full_run.target.folder(full_run.dag_run).joinpath("report.html").read_text()
    (holds_back,) = [s for s in html.split("<h2>") if s.startswith("What holds back VACUUM")]
    assert "lock on <code>public.locked</code>" in holds_back and "long ALTER" in holds_back
    assert "Nothing:" not in holds_back
    (other,) = [s for s in html.split("<h2>") if s.startswith("Not looked at: other schemas")]
    assert "<code>archive</code>" in other and "2,400" in other
    (unused,) = [s for s in html.split("<h2>") if s.startswith("Unused indexes")]
    assert "<code>public.clean_payload</code>" in unused  # schema-qualified
    body = full_run.emails[0].get_body(("html",)).get_content()
    assert "schema <code>archive</code> has 2,400 dead tuples" in body


def test_a_young_database_gets_no_drop_and_is_called_too_young(full_run: FullRun) -> None:
    unused = [index["index"] for index in full_run.report["unused_indexes"]]
    assert "clean_payload" in unused  # an index no query has used, on a database minutes old
    assert [r for r in full_run.report["recommendations"] if r["kind"] == "drop_index"] == []
    html = full_run.target.folder(full_run.dag_run).joinpath("report.html").read_text()
    assert "too young to judge" in html and "decided by <i>first observed by this DAG</i>" in html


def test_the_email_lands_after_the_store_small_with_the_report_location(full_run: FullRun) -> None:
    (message,) = [m for m in full_run.emails if DAG_ID in m["subject"]]
    assert "partial" in message["subject"]  # the locked table was not done
    attachments = {
        part.get_filename(): part.get_payload(decode=True) for part in message.walk() if part.get_filename()
    }
    assert sorted(attachments) == ["bloat.png", "dead_tuples.png"]
    stored = full_run.target.folder(full_run.dag_run)
    assert attachments["bloat.png"] == stored.joinpath("bloat.png").read_bytes()
    body = message.get_body(("html",)).get_content()
    assert "Key tables" in body and "public.bloated" in body and 'src="cid:bloat.png"' in body
    assert f"{stored.as_uri()}/report.html" in body
    instances = {ti.task_id: ti for ti in full_run.dag_run.get_task_instances()}
    assert instances["notify"].start_date >= instances["store"].end_date


def test_history_is_upserted_and_a_rerun_does_not_duplicate(
    stack, fresh_database, run_dag, monkeypatch, tmp_path
) -> None:
    # Its own target: rerunning on the shared one would change what the other tests read.
    target = point_at(monkeypatch, stack, new_target(fresh_database, tmp_path))
    make_table(target.db_url, LOCKED, rows=2000, deleted_percent=50)
    with psycopg.connect(target.db_url) as holder:
        holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(LOCKED.identifier))
        dag_run = run_dag(DAG_ID, run_conf={"notify": "never"})
        holder.rollback()
    run_id = dag_run.run_id
    metrics = "SELECT phase, count(*) FROM tutormax_ops.table_metrics WHERE run_id = %s GROUP BY 1 ORDER BY 1"
    runs = "SELECT status FROM tutormax_ops.runs WHERE run_id = %s"
    assert target.results(metrics, run_id) == [("after", 2), ("before", 2)]
    assert target.results(runs, run_id) == [("partial",)]
    again = rerun(dag_run, {"notify": "never"})
    assert again.run_id == run_id
    assert target.results(metrics, run_id) == [("after", 2), ("before", 2)]
    assert target.results(runs, run_id) == [("completed",)]  # nothing is locked any more
    assert target.results("SELECT count(*) FROM tutormax_ops.runs WHERE run_id <> %s", run_id) == [(0,)]


def test_a_window_of_zero_defers_everything(stack, fresh_database, run_dag, monkeypatch, tmp_path) -> None:
    target = point_at(monkeypatch, stack, new_target(fresh_database, tmp_path))
    dag_run = run_dag(DAG_ID, run_conf={"window_minutes": 0, "notify": "never"})
    assert task_states(dag_run) == {**ALL_SUCCESS, "notify": ["skipped"]}
    report = target.report(dag_run)
    assert report["status"] == "partial"
    assert [row["outcome"] for row in report["tables"] if row["planned"]] == ["deferred"]
    assert dead_tuples(target.db_url, BLOATED) >= 9000


def test_a_held_migration_lock_makes_maintenance_wait_then_skip(
    stack, fresh_database, run_dag, maildir, monkeypatch, tmp_path
) -> None:
    target = point_at(monkeypatch, stack, new_target(fresh_database, tmp_path))
    monkeypatch.setenv("TUTORMAX_OPS__COORDINATION__LOCK_WAIT_SECONDS", "2")
    key = load_settings().coordination.advisory_lock_key
    sent_before = len(read_emails(maildir))
    with psycopg.connect(target.db_url, autocommit=True, application_name="migration") as migration:
        migration.execute("SELECT pg_advisory_lock(%s)", (key,))
        started = time.monotonic()
        dag_run = run_dag(DAG_ID)
        assert time.monotonic() - started >= 2
    assert task_states(dag_run) == ALL_SUCCESS
    report = target.report(dag_run)
    assert report["status"] == "skipped"
    assert f"advisory lock {key} is held by pid" in report["status_detail"]
    assert "(migration," in report["status_detail"]
    assert dead_tuples(target.db_url, BLOATED) >= 9000
    subjects = [m["subject"] for m in read_emails(maildir)[sent_before:]]
    assert any(DAG_ID in subject and "skipped" in subject for subject in subjects), subjects


def test_dry_run_changes_nothing(stack, fresh_database, run_dag, monkeypatch, tmp_path) -> None:
    target = point_at(monkeypatch, stack, new_target(fresh_database, tmp_path))
    maintained = "SELECT n_dead_tup, vacuum_count, analyze_count, last_analyze FROM pg_stat_user_tables"
    with psycopg.connect(target.db_url) as conn:
        before = conn.execute(maintained).fetchall()
    dag_run = run_dag(DAG_ID, run_conf={"dry_run": True, "notify": "on_findings"})
    assert task_states(dag_run) == {**ALL_SUCCESS, "notify": ["skipped"]}
    report = target.report(dag_run)
    assert report["status"] == "dry_run"
    assert [(row["name"], row["outcome"]) for row in report["tables"]] == [("public.bloated", "planned")]
    with psycopg.connect(target.db_url) as conn:
        assert conn.execute(maintained).fetchall() == before
    assert before[0][:3] == (10_000, 0, 1)
    phases = "SELECT DISTINCT phase FROM tutormax_ops.table_metrics WHERE run_id = %s"
    assert target.results(phases, dag_run.run_id) == [("before",)]


@pytest.mark.parametrize(
    "conf",
    [
        {"mode": "full"},
        {"parallel_jobs": 0},
        {"parallel_jobs": 33},
        {"min_dead_tuple_ratio": 1.5},
        {"window_minutes": -1},
        {"tables": "public.orders"},
        {"notify": "sometimes"},
        {"dry_run": "yes"},
    ],
)
def test_bad_params_are_refused_before_any_task_runs(run_dag, conf: dict) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        run_dag(DAG_ID, run_conf=conf)


def test_an_unknown_table_fails_the_plan_naming_the_field(
    stack, fresh_database, run_dag, maildir, monkeypatch, tmp_path
) -> None:
    point_at(monkeypatch, stack, new_target(fresh_database, tmp_path))
    sent_before = len(read_emails(maildir))
    dag_run = run_dag(DAG_ID, run_conf={"tables": ["no_such_table"]})
    assert str(dag_run.state) == "failed"
    states = task_states(dag_run)
    assert (states["snapshot_before"], states["plan"], states["vacuum"]) == (
        ["success"],
        ["failed"],
        ["upstream_failed"],
    )
    assert (states["report"], states["outcome"]) == (["skipped"], ["failed"])
    plan = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "plan")
    assert plan.try_number == 1  # an AirflowFailException: a retry cannot make the table exist
    bodies = [
        part.get_content()
        for message in read_emails(maildir)[sent_before:]
        for part in message.walk()
        if part.get_content_type() == "text/html"
    ]
    assert any(
        "tables: no table &#39;no_such_table&#39;" in body or "tables: no table 'no_such_table'" in body
        for body in bodies
    ), bodies


def maintenance_counts(url: str) -> dict[str, tuple[int, bool]]:
    """{table: (vacuum_count, analyzed)} from pg_stat_user_tables."""
    query = "SELECT relname, vacuum_count, last_analyze IS NOT NULL FROM pg_stat_user_tables"
    with psycopg.connect(url) as conn:
        return {name: (count, analyzed) for name, count, analyzed in conn.execute(query).fetchall()}


def test_named_tables_are_vacuumed_below_the_threshold_and_each_partition_once(
    stack, fresh_database, run_dag, monkeypatch, tmp_path
) -> None:
    target = point_at(monkeypatch, stack, new_target(fresh_database, tmp_path))
    make_table(target.db_url, TableRef("public", "clean"), rows=1000, deleted_percent=1)  # 1% < 5%
    leaves = make_partitioned(target.db_url, TableRef("public", "events"))
    dag_run = run_dag(DAG_ID, run_conf={"tables": ["clean", "events"], "notify": "never"})
    assert task_states(dag_run) == {**ALL_SUCCESS, "notify": ["skipped"]}
    counts = maintenance_counts(target.db_url)
    assert counts["clean"] == (1, True)
    assert [counts[leaf.table][0] for leaf in leaves] == [1, 1, 1]  # each partition vacuumed once
    with psycopg.connect(target.db_url) as conn:
        partitioned_stats = conn.execute(
            "SELECT last_analyze IS NOT NULL, vacuum_count FROM pg_stat_user_tables WHERE relname = 'events'"
        ).fetchall()
    if partitioned_stats:  # PG14+ lists partitioned tables there
        assert partitioned_stats == [(True, 0)]  # analyzed, never vacuumed itself
    assert counts["bloated"][0] == 0  # not named: left alone
    report = target.report(dag_run)
    assert {row["name"] for row in report["tables"]} == {
        "public.clean",
        "public.events",
        *(leaf.display for leaf in leaves),
    }
    by_name = rows_by_name(report)
    assert by_name["public.clean"]["reason"] == "named in the run's tables (below the thresholds)"
    assert by_name["public.events"]["outcome"] == "done"


def test_a_role_that_owns_nothing_gets_a_failed_run_with_the_grants_that_make_the_rerun_succeed(
    stack, fresh_database, run_dag, maildir, monkeypatch, tmp_path, pg_admin_url
) -> None:
    target = new_target(fresh_database, tmp_path)
    hidden = TableRef("hidden", "dirty")  # in a schema the role may not use
    make_table(target.db_url, hidden, rows=4000, deleted_percent=50)
    name, password = f"maint_guest_{os.getpid()}", new_password()  # the server wants one from every role
    role = sql.Identifier(name)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE pg_monitor").format(role, sql.Literal(password))
        )
    guest_url = with_credentials(target.db_url, name, password)
    point_at(monkeypatch, stack, replace(target, db_url=guest_url))
    conf = {"schemas": ["public", "hidden"]}
    sent_before = len(read_emails(maildir))
    try:
        dag_run = run_dag(DAG_ID, run_conf=conf)
        states = task_states(dag_run)
        assert str(dag_run.state) == "failed"
        assert {task: states[task] for task in ("vacuum", "report", "store", "notify", "outcome")} == {
            "vacuum": ["success"],
            "report": ["success"],
            "store": ["success"],
            "notify": ["success"],
            "outcome": ["failed"],
        }
        report = target.report(dag_run)
        assert report["status"] == "failed"  # 0 of 2 done: not "partial"
        details = {row["name"]: row["detail"] for row in report["tables"] if row["planned"]}
        assert "permission denied for schema hidden" in details["hidden.dirty"]
        grants = report["permission_fix"]["grants"]
        with psycopg.connect(target.db_url) as conn:
            pg17_or_later = conn.info.server_version >= 170000
        quoted = role.as_string()
        assert grants == [f'GRANT USAGE ON SCHEMA "hidden" TO {quoted};'] + (
            [f"GRANT pg_maintain TO {quoted};"] if pg17_or_later else []
        )
        assert " ".join(grants) in report["failure"]
        assert dead_tuples(target.db_url, BLOATED) >= 9000
        assert target.results("SELECT status FROM tutormax_ops.runs WHERE run_id = %s", dag_run.run_id) == [
            ("failed",)
        ]
        messages = read_emails(maildir)[sent_before:]
        reports = [m for m in messages if "0 of 2 tables done" in m["subject"]]
        assert len(reports) == 1, [m["subject"] for m in messages]
        failure_bodies = [
            m.get_body(("html", "plain")).get_content() for m in messages if m is not reports[0]
        ]
        assert any("GRANT USAGE ON SCHEMA" in body and "outcome" in body for body in failure_bodies)
        instances = {ti.task_id: ti for ti in dag_run.get_task_instances()}
        assert instances["outcome"].start_date >= instances["notify"].end_date
        if not pg17_or_later:
            return  # before 17 no GRANT lets a role VACUUM another's table; the report says so

        with psycopg.connect(target.db_url, autocommit=True) as admin:  # the fix, as the report gives it
            admin.execute(sql.SQL(" ".join(grants)))
        again = run_dag(DAG_ID, run_conf=conf)
        assert str(again.state) == "success", task_states(again)
        assert {row["name"]: row["outcome"] for row in target.report(again)["tables"] if row["planned"]} == {
            "public.bloated": "done",
            "hidden.dirty": "done",
        }
        assert dead_tuples(target.db_url, hidden) == 0
    finally:
        with psycopg.connect(target.db_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(role))  # the schema grant, in this database
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(role))


def test_a_successful_run_logs_no_error_line(
    stack, fresh_database, run_dag, monkeypatch, tmp_path, capfd
) -> None:
    """An operator reads `[error]` in a green run's log as something to act on: a clean run has none."""
    point_at(monkeypatch, stack, new_target(fresh_database, tmp_path))
    dag_run = run_dag(DAG_ID)
    assert str(dag_run.state) == "success", task_states(dag_run)
    logged = capfd.readouterr()
    errors = [line for line in (logged.out + logged.err).splitlines() if "[error" in line]
    assert errors == [], errors[:5]
