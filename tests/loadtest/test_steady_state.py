"""The steady state is what gets judged, end to end: a real Locust run, launched by the runner, of
a locustfile that imports none of ours, against a real server that answers slowly for its first
seconds (a cold service warming up). The judged figures leave those seconds out; the whole run's
keep them, and the report shows both."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from loadtest.factories import SETTINGS, plan
from support import serving
from tutormax_ops.collectors.locust import parse_run
from tutormax_ops.collectors.locust_seconds import SECONDS_GLOB, STEADY_STATE, read_seconds
from tutormax_ops.core.paths import LOCUST_DIR
from tutormax_ops.loadtest.runner import run_locust

SLOW_S, SLOW_MS, FAST_MS = 2.5, 400, 1  # slow from the first request on, for SLOW_S seconds
USERS, SPAWN_RATE, RUN_S = 8, 8, 15
# A user's own locustfile; the test copies it out of include/locust, so only the runner adds ours.
LOCUSTFILE = LOCUST_DIR / "paced_visitor_locustfile.py"
WAIT_S = 0.5  # that locustfile's constant wait time

pytestmark = pytest.mark.e2e  # every test here judges a real Locust run


def slow_start_app():
    """Answers every request after SLOW_MS for SLOW_S seconds from its first request, then after
    FAST_MS; it sends its own time in X-Response-Time, as the reference service does."""
    from fastapi import FastAPI, Response

    app = FastAPI()
    first: list[float] = []

    @app.get("/")
    async def index() -> Response:
        now = time.monotonic()
        first.append(now) if not first else None
        ms = SLOW_MS if now - first[0] < SLOW_S else FAST_MS
        await asyncio.sleep(ms / 1000)
        return Response("ok", headers={"X-Response-Time": f"{ms:.2f}ms"})

    return app


@pytest.fixture(scope="module", params=["", "import server_time"], ids=["plain", "imports-server_time"])
def slow_start_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A locustfile of a user's, kept elsewhere: one that imports none of ours (the runner records
    it anyway), and one that imports `server_time` as the README says it may (recorded once)."""
    folder = tmp_path_factory.mktemp("steady")
    locustfile = folder / "elsewhere_locustfile.py"
    locustfile.write_text(f"{request.param}\n{LOCUSTFILE.read_text()}")
    loadtest = SETTINGS.loadtest.model_copy(update={"warmup_fraction": 0.25})
    with serving(slow_start_app()) as port:
        run_plan = plan(
            host=f"http://127.0.0.1:{port}",
            users=USERS,
            spawn_rate=SPAWN_RATE,
            run_time_s=RUN_S,
            locustfile=str(locustfile),
        )
        outcome = run_locust(run_plan, loadtest, folder, log=lambda _: None)
    assert outcome.stopped_by is None and set(outcome.exit_codes.values()) == {0}, outcome
    steady_after = run_plan.measure_after_s(loadtest.warmup_fraction)
    assert steady_after > SLOW_S + 2  # 1 s of ramp-up and 3.75 s of warm-up: the slow start lies before it
    run = parse_run(
        csv_prefix=folder / "locust",
        json_path=folder / "locust.json",
        html_path=folder / "locust.html",
        steady_after_s=steady_after,
    )
    return folder, run_plan, run, steady_after


def test_the_judged_p95_leaves_the_slow_start_out_and_the_whole_run_keeps_it(slow_start_run) -> None:
    folder, _, run, steady_after = slow_start_run
    judged = run.judged_figures
    assert list(folder.glob(SECONDS_GLOB)), "the runner records any locustfile per second"
    assert judged.basis == STEADY_STATE
    assert steady_after <= judged.excluded_s < steady_after + 1  # from the first whole second after it

    # The whole run: Locust's own JSON, whose p95 the slow start sets (well over 5% of its requests).
    assert run.aggregate.p95_ms >= SLOW_MS and run.aggregate.server_p95_ms >= SLOW_MS
    # The judged steady state: only the fast answers, by Locust's clock and by the service's own.
    assert judged.aggregate.p95_ms < SLOW_MS / 2 and judged.aggregate.server_p95_ms == FAST_MS
    assert judged.aggregate.p95_high_ms is not None and judged.aggregate.p95_high_ms < SLOW_MS / 2
    assert 0 < judged.aggregate.requests < run.aggregate.requests
    assert judged.aggregate.requests == judged.aggregate.server_requests  # every answer sent its time
    # Throughput over the judged seconds: each user's request plus its wait, nothing of the ramp-up.
    assert judged.aggregate.steady_rps == pytest.approx(judged.aggregate.requests / judged.seconds)
    assert judged.aggregate.steady_rps > 0.8 * USERS / (WAIT_S + FAST_MS / 1000)

    # The recorder missed no request and counted none twice: its seconds hold exactly what
    # Locust's JSON counted.
    recorded = read_seconds(folder)
    whole = recorded.span(min(recorded.seconds), max(recorded.seconds) + 1)
    assert sum(stats.requests for stats in whole.values()) == run.aggregate.requests


def test_the_report_shows_the_whole_run_beside_the_judged_figures(slow_start_run, tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath
    from markupsafe import escape

    from tutormax_ops.loadtest.report import judged_beside_whole, judged_sentence, write_reports

    _, run_plan, run, _ = slow_start_run
    analysis = _analysis(run_plan, run)
    [aggregate, endpoint] = judged_beside_whole(analysis)
    assert aggregate.scope == "all endpoints" and endpoint.scope == "GET /"
    assert aggregate.whole.p95_ms >= SLOW_MS > aggregate.judged.p95_ms
    sentence = judged_sentence(analysis)
    excluded = f"{run.judged_figures.excluded_s:.0f}"
    assert f"the first {excluded} s were left out, the ramp-up to {USERS} users (1 s at 8/s)" in sentence

    write_reports(analysis, ObjectStoragePath(tmp_path.as_uri()), SETTINGS)
    for name in ("report.html", "email.html"):
        html = (tmp_path / name).read_text()
        assert str(escape(sentence)) in html and "whole run" in html and "judged (steady state)" in html, name
        # Both p95s of the aggregate's row pair, judged first.
        pair = html[html.index("all endpoints: judged (steady state)") :]
        assert pair.index(f'<td class="num">{aggregate.judged.p95_ms:,.0f}</td>') < pair.index(
            f'<td class="num">{aggregate.whole.p95_ms:,.0f}</td>'
        ), name


def _analysis(run_plan, run):
    from datetime import UTC, datetime

    from tutormax_ops.loadtest.model import Analysis

    return Analysis(
        plan=run_plan,
        run_id="steady",
        started_at=datetime.now(UTC),
        valid=True,
        invalid_reasons=(),
        run=run,
        checks=(),
        steps=(),
        knee=None,
        regression=(),
        history=(),
        server={
            "window": "steady state",
            "cache_hit_rate": None,
            "query_p95_ms": None,
            "slow_query_rate": None,
            "service_summary": None,
            "service_summary_note": None,
            "errors": [],
            "window_started_at": None,
        },  # fmt: skip
        outcome={"exit_codes": {"locust": 0}, "stopped_by": None},
    )
