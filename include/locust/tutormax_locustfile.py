"""TutorMax traffic for headless Locust runs: students, tutors and admins as weighted user classes.

Run only as a CLI subprocess (`tutormax_ops.loadtest` does): importing locust gevent-patches the
process that imports it.

- Every request is named by its route template (`/api/tutors/{tutor_id}/dashboard`), so Locust's
  statistics group per endpoint, whatever the id.
- Ids are real: each load-generating process fetches a sample from `GET /api/ids/sample` once, when
  the test starts, never hard-coded. Tutors and students keep one identity for their whole life, as
  people do, and students open tutors from the lists they browsed, mostly near the top, as real
  traffic does. Both decide how well the service's cache can work, so they are part of what a run
  measures.
- Think time is the profile's (`run_data`: `TUTORMAX_LOCUST_THINK_TIME="min,max"` seconds here, the
  master's on a worker), uniform; `0,0` removes it, which only a capacity benchmark wants.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import random
import urllib.request
from dataclasses import dataclass
from typing import Any

import loop_clock  # noqa: F401  (makes -t last what it says)
import run_data
import server_time  # noqa: F401  (records X-Response-Time per request)

from locust import FastHttpUser, events, task

ID_SAMPLE_ENV = "TUTORMAX_LOCUST_ID_SAMPLE"
BOOKING_DURATIONS = (30, 45, 60, 90)
POSITION_CUM_WEIGHTS = tuple(itertools.accumulate(1 / (position + 1) for position in range(100)))

log = logging.getLogger("tutormax_locustfile")


@dataclass(frozen=True)
class Ids:
    """One process's sample of real ids, and the subjects its tutors teach."""

    tutor_ids: tuple[int, ...]
    student_ids: tuple[int, ...]
    subjects: tuple[str, ...]


_ids: Ids | None = None


def ids() -> Ids:
    if _ids is None:
        raise RuntimeError("ids were not loaded: the test_start listener failed (see the log above)")
    return _ids


def fetch_ids(host: str, limit: int) -> Ids:
    with urllib.request.urlopen(f"{host.rstrip('/')}/api/ids/sample?limit={limit}", timeout=30) as response:
        sample = json.load(response)
    if not sample["tutor_ids"] or not sample["student_ids"]:
        raise RuntimeError("the service returned no tutor or student ids: load its data first")
    return Ids(
        tutor_ids=tuple(sample["tutor_ids"]),
        student_ids=tuple(sample["student_ids"]),
        subjects=tuple(
            sorted({subject for values in sample["tutor_subjects"].values() for subject in values})
        ),
    )


@events.test_start.add_listener
def _load_ids(environment: Any, **_: object) -> None:
    """Each process that runs users fetches its own sample; a master runs none."""
    global _ids
    if environment.parsed_options is not None and environment.parsed_options.master:
        return
    try:
        _ids = fetch_ids(environment.host or "", int(os.environ.get(ID_SAMPLE_ENV, "200")))
    except Exception as error:  # without ids no user can act: stop rather than record noise
        log.error("cannot fetch ids from %s/api/ids/sample: %s", environment.host, error)
        environment.process_exit_code = 1
        if environment.runner is not None:
            environment.runner.quit()


class StudentUser(FastHttpUser):
    """Browses a subject's tutors, reads the reviews of listed tutors, checks their own history and
    now and then books one of the listed tutors."""

    weight = 7
    wait_time = run_data.wait_time

    def on_start(self) -> None:
        self.student_id = random.choice(ids().student_ids)
        self.subject = ""
        self.shortlist: list[int] = []
        self.shortlist_weights: tuple[float, ...] = ()

    def listed_tutor(self) -> int:
        # People click the top of a list: position p is chosen with weight 1/(p+1).
        return random.choices(self.shortlist, cum_weights=self.shortlist_weights)[0]

    @task(20)
    def browse_tutors(self) -> None:
        subject = random.choice(ids().subjects)
        response = self.client.get(f"/api/tutors?subject={subject}", name="/api/tutors")
        if response.status_code == 200:
            self.subject = subject
            self.shortlist = [tutor["id"] for tutor in response.json()["tutors"]]
            self.shortlist_weights = POSITION_CUM_WEIGHTS[: len(self.shortlist)]

    @task(6)
    def read_tutor_reviews(self) -> None:
        if not self.shortlist:
            return self.browse_tutors()
        tutor_id = self.listed_tutor()
        self.client.get(f"/api/tutors/{tutor_id}/feedback", name="/api/tutors/{tutor_id}/feedback")

    @task(10)
    def view_history(self) -> None:
        self.client.get(f"/api/students/{self.student_id}/history", name="/api/students/{student_id}/history")

    # About one booking per 36 student actions: bookings invalidate cache entries, so their share
    # shapes the hit rate. (The seed's 30,000 sessions a day are 0.35/s against ~200 reads/s.)
    @task(1)
    def book_session(self) -> None:
        if not self.shortlist:
            return self.browse_tutors()
        start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
        body = {
            "tutor_id": self.listed_tutor(),
            "student_id": self.student_id,
            "subject": self.subject,
            "scheduled_at": (start + dt.timedelta(days=random.randint(1, 30), hours=random.randint(0, 12)))
            .isoformat()
            .replace("+00:00", "Z"),
            "duration_minutes": random.choice(BOOKING_DURATIONS),
        }
        with self.client.post(
            "/api/sessions", json=body, name="/api/sessions", catch_response=True
        ) as response:
            if response.status_code != 201:
                response.failure(f"booking answered {response.status_code}: {response.text[:200]}")


class TutorUser(FastHttpUser):
    """Opens their dashboard and reads their feedback."""

    weight = 2
    wait_time = run_data.wait_time

    def on_start(self) -> None:
        self.tutor_id = random.choice(ids().tutor_ids)

    @task(3)
    def dashboard(self) -> None:
        self.client.get(f"/api/tutors/{self.tutor_id}/dashboard", name="/api/tutors/{tutor_id}/dashboard")

    @task(1)
    def feedback(self) -> None:
        self.client.get(f"/api/tutors/{self.tutor_id}/feedback", name="/api/tutors/{tutor_id}/feedback")


class AdminUser(FastHttpUser):
    """Opens the overview and the analytics, the expensive aggregates the cache exists for."""

    weight = 1
    wait_time = run_data.wait_time

    @task
    def overview(self) -> None:
        self.client.get("/api/admin/overview", name="/api/admin/overview")

    @task
    def analytics(self) -> None:
        self.client.get("/api/admin/analytics", name="/api/admin/analytics")
