"""Wall-clock windows: a scheduled run's window opens at its scheduled time, a manual one's at its start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tutormax_ops.core.windows import Window, run_window

SUNDAY_3AM = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def test_a_scheduled_run_counts_from_its_scheduled_time() -> None:
    started = SUNDAY_3AM + timedelta(hours=20, minutes=7)  # unpaused at 23:07
    window = run_window(run_type="scheduled", run_after=SUNDAY_3AM, started_at=started, minutes=120)
    assert (window.opens_at, window.closes_at, window.scheduled) == (
        SUNDAY_3AM,
        SUNDAY_3AM + timedelta(hours=2),
        True,
    )
    assert window.missed_by(started) == timedelta(hours=18, minutes=7)
    assert window.late_reason(started) == (
        "skipped: started 18.1 h after its window (2026-11-29 03:00 UTC + 120 min) closed"
    )
    on_time = SUNDAY_3AM + timedelta(minutes=1)
    assert window.late_reason(on_time) is None
    assert window.remaining_s(on_time) == 119 * 60


def test_a_scheduled_load_must_fit_in_what_is_left_of_its_window() -> None:
    """A load test cannot stop half-way and still measure: it starts only if it ends in the window."""
    window = run_window(run_type="scheduled", run_after=SUNDAY_3AM, started_at=SUNDAY_3AM, minutes=120)
    late_start = SUNDAY_3AM + timedelta(minutes=100)
    assert window.overrun_reason(20 * 60, late_start) is None  # ends exactly at the close
    assert window.overrun_reason(60 * 60, late_start) == (
        "skipped: started 1.7 h into its window (2026-11-29 03:00 UTC + 120 min); its 60 min would end "
        "40 min after the window closed"
    )
    assert window.overrun_reason(60, SUNDAY_3AM + timedelta(hours=3)) is None  # late_reason says that
    manual = run_window(run_type="manual", run_after=None, started_at=late_start, minutes=1)
    assert manual.overrun_reason(3600, late_start) is None


def test_a_manual_run_counts_from_its_start_even_with_a_run_after() -> None:
    started = SUNDAY_3AM + timedelta(hours=20)
    window = run_window(run_type="manual", run_after=SUNDAY_3AM, started_at=started, minutes=120)
    assert (window.opens_at, window.scheduled) == (started, False)
    assert window.late_reason(started + timedelta(hours=5)) is None  # manual runs are never "late"
    assert window.remaining_s(started + timedelta(hours=5)) < 0  # but no table starts after it closes
    assert Window(started, 0, scheduled=False).remaining_s(started) == 0


def test_the_maintenance_dags_scheduled_time_is_run_after_the_cron_time(airflow_db) -> None:
    """Airflow 3 with a cron string uses CronTriggerTimetable: the run's logical date and run_after are
    the cron time itself (CronDataIntervalTimetable's run_after is its interval's end, also the cron time)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    from tutormax_ops.core.paths import PROJECT_ROOT

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "tutormax_db_maintenance.py")).get_dag(
        "tutormax_db_maintenance"
    )
    timetable = coerce_to_core_timetable(dag.timetable)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=SUNDAY_3AM - timedelta(days=1), latest=None, catchup=True),
    )
    assert info.run_after == SUNDAY_3AM == info.logical_date
