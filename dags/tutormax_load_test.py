"""
# tutormax_load_test

### Purpose
Runs a headless Locust load test of the TutorMax API with realistic traffic (students browse tutors,
read reviews, check their history and book sessions; tutors open their dashboard and feedback;
admins open the overview and analytics), then judges it twice:

1. against the targets (p95 < 200 ms, steady throughput ≥ 200 req/s, errors < 1 %, cache hit rate
   > 80 %, query p95 < 100 ms), on the aggregate and per endpoint; the p95 by the service's own
   `X-Response-Time` when it sends one (the seed's definition), Locust's figure beside it;
2. against this profile's own history: a prediction limit (Student's t on the history's own
   degrees of freedom) for one bad run and e-divisive means change points for confirmed shifts,
   per metric and per endpoint, with false alarms held to `loadtest.regression.false_alarm_rate`
   per run over all series. The limit's spread is at least the run's own sampling spread
   (binomial, from its requests); an endpoint with fewer requests than a p95 needs is not judged
   (a smoke run is sized from recent runs so that every endpoint reaches them); every report
   states the smallest step it could have seen. Judged from `min_history` earlier runs on.

The traffic is the profile's: its `locustfile` (under `include/locust/` or an absolute path), its
`user_classes` and `tags`, and what the locustfile reads (`think_time_s`, `ids` from a SQL query or
a list, `options`). `plan` loads the locustfile with Locust's own loader and fails, naming the
profile's field and the path, when it is missing or broken, lacks a named user class, or no task
carries one of its tags: before any request.

A guard runs next and refuses, before any request, a host off `loadtest.host_allowlist`, more
users than `loadtest.max_users`, a target whose health check (`service.health_check`: path, status,
optionally a JSON field and its value; the smoke DAG's too) is not as expected, and a database whose
shared advisory lock is held (a migration or maintenance is running). The run holds that lock itself.

### Schedule
`loadtest.schedule` (02:00 UTC nightly, from `include/config/tutormax.yaml`), and after each
`tutormax_cache_warmed` Asset event (so never alongside the warming): that run is the `smoke`
profile, a check after the nightly warming or a migration.

A scheduled run's window opens at its scheduled time and lasts `loadtest.window_minutes`: a run
that starts after it closed (unpaused late, scheduler down), or whose load could not end before it
closes, sends nothing, stores a `skipped` row in `loadtest_runs` with "skipped: started N h after
its window", and skips its tasks. Manual runs count from their start.

An Asset-triggered run sends load only if a triggering `tutormax_cache_warmed` event is marked
`planned` in its metadata: the warming marks it after its scheduled run inside its window or a
migration's run, and after a manual warm run only when that run's `load_test` param is true.
Otherwise it stores a `skipped` row naming the event's run, and sends nothing.

Unpausing: the latest missed 02:00 run starts at once and is skipped unless inside its window; the
warming's catch-up run warms nothing and emits no event, so no load follows an unpause.

### Params
- `profile`: one of `loadtest.profiles` (`smoke` 20 users/60 s, `baseline` 300 users at 10/s,
  `stress` steps up to find the knee, `soak`, and any a team adds for its own service). A stress
  run's steps follow the shape's schedule, each measured on its settled part; its knee is the last step before the first failing one, with
  its margin and a sampling check; the machine's CPU (all cores, steal included), the generator's
  and the local service's say who set the limit ("limited by this machine": the knee is a lower
  bound). The history keeps its knee (`knee_rps`, `knee_p95_ms`), not whole-run figures.
- `users`, `spawn_rate`, `run_time` (seconds): override the profile; empty keeps its values.
- `users`: at most `loadtest.max_users`; the form and the REST API refuse more before a run exists.
- `host`: empty (the default) means the `tutormax_api` connection's host; any host must be on the
  allowlist.
- `processes`: 0 runs one locust process; N runs `locust --master` and N local workers (remote
  workers join with `loadtest.remote_workers`, see the README's multi-host layout).
- `notify`: `always`, `on_problem` (regression, target breach or invalid run) or `never`.

A run flagged as a regression stays in the history and on the charts but out of the baseline,
until its run id is added to the Airflow Variable `tutormax_loadtest_accepted_runs` (a JSON list:
"this is the new normal") or a change point confirms its level. The first good run after it says
"recovered" and is emailed under `on_problem`.

### Outputs
Under `storage.artifacts_base/tutormax_load_test/<run_id>/`: `report.html`, Locust's `locust.html`,
its CSVs and JSON, `summary.json`, `server_metrics.json`, `cpu_samples.csv`, `endpoints.csv`,
`trend.png`, a stress run's `stress.png` (req/s and p95 against users) and the email. History rows in `tutormax_results`: one per run in `loadtest_runs`, one
per endpoint in `loadtest_endpoints` (none for a stress run; upserted: a rerun replaces them). Runs
are compared only with runs of the same profile, user count and `processes`.

### On failure
A refusal fails `guard` with the reason, and no load is sent. An invalid run (report missing, cut
short by Locust's own log, a stall in completed requests, a saturated generator or machine), a
target breach or a regression fails `verdict` after the results
were stored and the email sent. A kill or an execution timeout of `run` stops locust's whole
process group (SIGINT, then SIGKILL) and records the run as invalid.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from tutormax_ops.core.assets import CACHE_WARMED
from tutormax_ops.core.dag_policy import START_DATE, default_args
from tutormax_ops.core.parse_view import parse_view
from tutormax_ops.loadtest.operator import NOTIFY_CHOICES, LoadTestRunOperator, notify_failure_unless_verdict

# YAML and environment only: the Airflow Variable is read by the tasks, never while parsing.
VIEW = parse_view()


def _profile_override(json_type: str, title: str, description: str, **limits: float) -> Param:
    """A form field that overrides one value of the chosen profile; left empty, the profile's stands."""
    return Param(
        None,
        type=["null", json_type],
        title=title,
        description_md=f"{description} Empty: the profile's.",
        section="Load",
        **limits,
    )


@dag(
    dag_id="tutormax_load_test",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(VIEW.loadtest_schedule, timezone="UTC"), assets=[CACHE_WARMED]
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["tutormax", "loadtest"],
    default_args=default_args(),
    doc_md=__doc__,
    params={
        "profile": Param(
            VIEW.loadtest_default_profile,
            type="string",
            enum=list(VIEW.loadtest_profiles),
            title="Profile",
            description_md="Load profile from `loadtest.profiles`.",
            section="Load",
        ),
        "users": _profile_override(
            "integer",
            "Users",
            f"Peak users, at most `loadtest.max_users` ({VIEW.loadtest_max_users}).",
            minimum=1,
            maximum=VIEW.loadtest_max_users,
        ),
        "spawn_rate": _profile_override(
            "number", "Spawn rate (users/s)", "Users started per second.", exclusiveMinimum=0
        ),
        "run_time": _profile_override(
            "integer",
            "Run time (s)",
            f"Run time in seconds, ramp-up included. At least {VIEW.loadtest_min_run_time_s} "
            "(`loadtest.min_run_time_s`): the ramp-up, a warm-up of "
            "`loadtest.warmup_fraction` of the run, and a steady state several times the "
            "`loadtest.stall_min_s` a stall is told by, in which the busier endpoints reach the 72 "
            "requests a p95 needs for an upper confidence bound.",
            minimum=VIEW.loadtest_min_run_time_s,
            maximum=86_400,
        ),
        "host": Param(
            None,
            type=["null", "string"],
            pattern=r"^(https?://[^\s/?#]+/?)?$",
            title="Host",
            description_md="Empty (recommended): the `tutormax_api` connection's host. Otherwise a base "
            "URL such as `https://api.example.com`, whose host is on `loadtest.host_allowlist`.",
            section="Target",
        ),
        "processes": Param(
            0,
            type="integer",
            minimum=0,
            maximum=64,
            title="Worker processes",
            description_md="0: one locust process. N: `locust --master` plus N worker processes.",
            section="Load",
        ),
        "notify": Param(
            "on_problem",
            type="string",
            enum=list(NOTIFY_CHOICES),
            title="Email",
            description_md="Email on `always`, `on_problem` (regression, target breach, invalid run) or `never`.",
            section="Notify",
        ),
    },
)
def tutormax_load_test() -> None:
    @task
    def plan() -> dict:
        from airflow.sdk import get_current_context

        from tutormax_ops.loadtest.plan import plan_from_context
        from tutormax_ops.loadtest.window import skip_outside_window

        context = get_current_context()
        planned = plan_from_context(context)
        skip_outside_window(planned, context)
        return planned

    @task
    def guard(planned: dict) -> list[str]:
        from tutormax_ops.loadtest.guard import check_guard

        return check_guard(planned)

    @task
    def analyze(planned: dict, run: dict) -> dict:
        from airflow.sdk import get_current_context

        from tutormax_ops.loadtest.analyze import analyze_run

        return analyze_run(planned, run, get_current_context())

    @task
    def notify(result: dict) -> bool:
        from tutormax_ops.loadtest.report import notify_run

        return notify_run(result)

    @task(on_failure_callback=notify_failure_unless_verdict)
    def verdict(result: dict) -> str:
        from tutormax_ops.loadtest.verdict import enforce_verdict

        return enforce_verdict(result)

    planned = plan()
    run = LoadTestRunOperator(
        task_id="run", plan=planned, execution_timeout=timedelta(seconds=VIEW.loadtest_run_task_timeout_s)
    )
    guard(planned) >> run
    result = analyze(planned, run.output)
    notify(result) >> verdict(result)


tutormax_load_test()
