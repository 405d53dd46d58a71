"""The load test's settings: the service's health check, the load profiles (traffic included), the
regression rules and the `loadtest` section itself."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from tutormax_ops.core.settings_base import Cron, Percent, Section, Targets


class HealthCheck(Section):
    """`GET <service><path>` must answer `status`; with `json_field`, that field of its JSON body must
    equal `json_value`. Read by the load-test guard and the smoke DAG alike."""

    path: Annotated[str, Field(pattern=r"^/")] = "/health"
    status: Annotated[int, Field(ge=100, le=599)] = 200
    # A dotted path into the JSON body (`status`, `checks.database`); "" is the whole body (a service
    # that answers `true`); null reads no body.
    json_field: str | None = "status"
    json_value: Any = "ok"


class Service(Section):
    """What the package needs to know about the service it loads and checks, beyond its connections."""

    health_check: HealthCheck = HealthCheck()


class LocustIds(Section):
    """Ids a locustfile fills its route templates with: a SQL query run on `tutormax_db` (read-only,
    under the collectors' timeouts, `sql_params` bound), or a fixed list."""

    sql: str = ""
    sql_params: dict[str, Any] = Field(default_factory=dict)
    values: tuple[int | str, ...] = ()

    @model_validator(mode="after")
    def _one_source(self) -> LocustIds:
        if bool(self.sql.strip()) == bool(self.values):
            raise ValueError("give exactly one of sql or values")
        return self


class LoadProfile(Section):
    users: Annotated[int, Field(ge=1)]
    spawn_rate: Annotated[float, Field(gt=0)]
    run_time_s: Annotated[int, Field(ge=5)]
    step_users: Annotated[int, Field(ge=1)] | None = None
    # A stress step is measured from 10 s after it starts (Locust's window of current response
    # times) and needs 3 rows after that (`loadtest.stress`); 15 s leaves room for the seconds a
    # busy machine skips in Locust's history.
    step_seconds: Annotated[int, Field(ge=15)] | None = None
    # Set: a run without a run time on its form lasts as long as its recent runs say every endpoint
    # needs to reach the requests its p95 needs (loadtest/sizing.py), at most this long.
    max_run_time_s: Annotated[int, Field(ge=5)] | None = None
    targets: Targets | None = None
    # The traffic: a locustfile under include/locust/ or an absolute path, the user classes and tags
    # Locust runs (empty: all), and what the locustfile reads (see include/locust/json_api_locustfile.py).
    locustfile: Annotated[str, Field(min_length=1)] = "tutormax_locustfile.py"
    user_classes: tuple[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], ...] = ()
    tags: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    think_time_s: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]] | None = None
    ids: LocustIds | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class Regression(Section):
    """Verdict 2, a run against its profile's history (see `tutormax_ops.loadtest.regression`)."""

    window_runs: Annotated[int, Field(ge=5, le=1000)] = 50
    reference_runs: Annotated[int, Field(ge=3, le=1000)] = 20
    min_history: Annotated[int, Field(ge=2)] = 3
    # The share of unchanged runs allowed a false finding, over all the series one run judges.
    false_alarm_rate: Annotated[float, Field(gt=0, lt=0.5)] = 0.007
    # How many runs' worth of the run's other p95 series' pooled spread moderate each one's own.
    pooled_runs: Annotated[int, Field(ge=0)] = 20
    # The part of `false_alarm_rate` the change points get; the single-run limit keeps the rest.
    change_point_share: Annotated[float, Field(gt=0, lt=1)] = 0.2
    permutations: Annotated[int, Field(ge=19, le=10_000)] = 199
    min_relative_change: Annotated[float, Field(ge=0)] = 0.10
    confirm_runs: Annotated[int, Field(ge=1)] = 3
    # Sampling: the confidence of each run's own p95 and error-rate intervals; it also sets how many
    # requests an endpoint needs to be judged at all (72 at 0.95, see collectors/sampling.py).
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95


class LoadTest(Section):
    schedule: Cron = "0 2 * * *"
    host_allowlist: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    max_users: Annotated[int, Field(ge=1)] = 2000
    default_profile: str = "smoke"
    profiles: dict[str, LoadProfile] = Field(
        default_factory=lambda: {"smoke": LoadProfile(users=20, spawn_rate=10, run_time_s=60)}
    )
    think_time_s: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]] = (0.5, 1.5)
    # The form's shortest `run_time`: the ramp-up, the warm-up and a steady state long enough to judge
    # (see the DAG's param). Lower only where a run checks plumbing, not figures (the tests do).
    min_run_time_s: Annotated[int, Field(ge=5)] = 30
    stop_timeout_s: Annotated[int, Field(ge=0, le=600)] = 5
    warmup_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.25
    kill_grace_s: Annotated[float, Field(gt=0, le=600)] = 15
    start_slack_s: Annotated[float, Field(ge=0)] = 60
    run_task_timeout_s: Annotated[int, Field(ge=10)] = 7200
    cpu_saturation_percent: Percent = 90
    max_saturated_fraction: Annotated[float, Field(ge=0, le=1)] = 0.25
    # A stall: this many seconds in a row with completions below stall_fraction of the steady rate.
    stall_min_s: Annotated[int, Field(ge=1)] = 5
    stall_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1
    # The whole machine's CPU (% of all cores) above this in more than max_saturated_fraction of
    # the samples makes a run invalid (stress runs excepted); 100 switches the check off.
    host_saturation_percent: Percent = 95
    master_bind_host: str = "127.0.0.1"
    # 0 picks a free port per run (local workers only); remote workers need a fixed one, e.g. 5557.
    master_port: Annotated[int, Field(ge=0, le=65_535)] = 0
    remote_workers: Annotated[int, Field(ge=0)] = 0
    regression: Regression = Regression()
    # A scheduled run's load must fit between its scheduled time and this many minutes later; a run
    # that starts too late sends nothing (see core/windows.py). Manual and Asset runs count from their start.
    window_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 120

    @model_validator(mode="after")
    def _profiles_are_consistent(self) -> LoadTest:
        if self.default_profile not in self.profiles:
            raise ValueError(
                f"default_profile {self.default_profile!r} is not one of {sorted(self.profiles)}"
            )
        for name, profile in self.profiles.items():
            if profile.users > self.max_users:
                raise ValueError(f"profiles.{name}.users={profile.users} exceeds max_users={self.max_users}")
        return self
