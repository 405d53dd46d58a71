"""Wall-clock windows for work that must not run at peak time (maintenance, scheduled load tests).

A scheduled run's window opens at its scheduled time, not when a worker got to it: a run that starts
hours late (the DAG was unpaused, the scheduler was down) finds its window closed and does nothing.
In Airflow 3 the scheduled time is the run's `run_after`: for a cron schedule with
CronTriggerTimetable (the default) it equals the logical date, with CronDataIntervalTimetable it is
the data interval's end. A manual or asset-triggered run has no schedule, so its window opens when it
starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Window:
    opens_at: datetime
    minutes: int
    scheduled: bool  # opened at the scheduled time rather than when the run started

    @property
    def closes_at(self) -> datetime:
        return self.opens_at + timedelta(minutes=self.minutes)

    def remaining_s(self, now: datetime | None = None) -> float:
        return (self.closes_at - (now or datetime.now(UTC))).total_seconds()

    def missed_by(self, now: datetime | None = None) -> timedelta | None:
        """How long after the window closed a scheduled run started; None while it is open (or manual).

        A manual run with a window of 0 minutes is not "missed": it defers its work, as asked.
        """
        now = now or datetime.now(UTC)
        if not self.scheduled or now < self.closes_at:
            return None
        return now - self.closes_at

    def late_reason(self, now: datetime | None = None) -> str | None:
        """`skipped: started 3.2 h after its window` for a scheduled run that missed its window."""
        missed = self.missed_by(now)
        if missed is None:
            return None
        return (
            f"skipped: started {missed.total_seconds() / 3600:.1f} h after its window "
            f"({self.opens_at:%Y-%m-%d %H:%M} UTC + {self.minutes} min) closed"
        )

    def overrun_reason(self, duration_s: float, now: datetime | None = None) -> str | None:
        """For a scheduled run inside its window whose work of `duration_s` would outlast it: a load
        test cannot stop half-way and still measure anything, so it must fit or not start."""
        now = now or datetime.now(UTC)
        if not self.scheduled or now >= self.closes_at:
            return None  # a manual run's window fits its work; after the close, `late_reason` says why
        over = now + timedelta(seconds=duration_s) - self.closes_at
        if over <= timedelta(0):
            return None
        return (
            f"skipped: started {(now - self.opens_at).total_seconds() / 3600:.1f} h into its window "
            f"({self.opens_at:%Y-%m-%d %H:%M} UTC + {self.minutes} min); its {duration_s / 60:.0f} min "
            f"would end {over.total_seconds() / 60:.0f} min after the window closed"
        )


def run_window(
    *, run_type: str, run_after: datetime | None, started_at: datetime | None, minutes: int
) -> Window:
    """The window of a DAG run: from its scheduled time (`run_after`) when the scheduler started it,
    otherwise from its start."""
    scheduled = str(getattr(run_type, "value", run_type)) == "scheduled" and run_after is not None
    opens_at = run_after if scheduled else (started_at or datetime.now(UTC))
    return Window(opens_at=opens_at, minutes=minutes, scheduled=scheduled)
