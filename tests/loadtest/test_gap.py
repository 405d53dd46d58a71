"""The client/server p95 gap and its likely side: each rule on hand-built CPU samples, the steady
window, the line the report shows and the invalid reasons that name the gap."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from loadtest.factories import SETTINGS, endpoint, locust_run, plan
from tutormax_ops.collectors.locust import LocustRun, parse_run
from tutormax_ops.loadtest import gap as gaps
from tutormax_ops.loadtest.gap import CpuWindow, GapReport, Spread, attribute_gap, cpu_window, material_gap
from tutormax_ops.loadtest.validity import validate_run


def seconds(typical: float, peak: float, *, peaks: int = 0, total: int = 30) -> Spread:
    """`total` one-second samples: `peaks` of them at `peak`, the rest at `typical`."""
    return Spread((typical,) * (total - peaks) + (peak,) * peaks)


QUIET = CpuWindow(
    samples=30, generator=seconds(20, 30), host=seconds(40, 55), service=seconds(50, 80), service_cores=2
)


def side(client: float, server: float, cpu: CpuWindow = QUIET) -> str:
    found = attribute_gap(
        "GET /a", client, server, cpu, cpu_saturation_percent=90, host_saturation_percent=95
    )
    assert found is not None
    return found.side


@pytest.mark.parametrize(
    ("client", "server"),
    [
        (20, 16),  # 4 ms: under 5 ms
        (140, 127),  # 13 ms, but 9% of the client p95
        (30, 34),  # the server's p95 above the client's: buckets, never a gap
    ],
)
def test_a_small_gap_is_negligible_and_not_attributed_even_on_a_saturated_generator(
    client: float, server: float
) -> None:
    saturated = replace(QUIET, generator=seconds(99, 100, peaks=30))
    assert side(client, server, saturated) == gaps.NEGLIGIBLE
    assert material_gap(client, server) == ""


def test_a_busy_generator_is_the_likely_side_before_the_host_and_the_service() -> None:
    everything = CpuWindow(
        30, seconds(85, 97, peaks=3), seconds(97, 100, peaks=30), seconds(190, 200, peaks=30), 2
    )
    assert side(140, 109, everything) == gaps.GENERATOR  # busy in 3 of 30 seconds: 10%


def test_one_busy_second_or_under_a_tenth_of_them_is_a_blip_not_a_side() -> None:
    assert side(60, 30, replace(QUIET, host=seconds(30, 100, peaks=1, total=5))) == gaps.NEITHER
    assert side(60, 30, replace(QUIET, generator=seconds(30, 100, peaks=2, total=30))) == gaps.NEITHER
    assert side(60, 30, replace(QUIET, host=seconds(30, 100, peaks=2, total=5))) == gaps.MACHINE


def test_a_saturated_host_is_this_machine_named_by_whether_the_service_shares_it() -> None:
    host = replace(QUIET, host=seconds(90, 99, peaks=10))
    assert side(140, 109, host) == gaps.MACHINE == "this machine (generator and service share its cores)"
    assert side(140, 109, replace(host, service=None, service_cores=0)) == gaps.MACHINE_REMOTE


def test_service_processes_busy_near_their_cores_are_the_accept_queue() -> None:
    busy = replace(QUIET, service=seconds(170, 185, peaks=5))  # 2 usable cores: above 2 x 90%
    assert side(60, 30, busy) == gaps.ACCEPT_QUEUE
    # The same CPU on a service that could use 3 cores left a core free: not its queue.
    assert side(60, 30, replace(busy, service_cores=3)) == gaps.NEITHER


def test_no_busy_side_leaves_network_or_accept_queue() -> None:
    assert (
        side(60, 30) == gaps.NEITHER == "network or the service's accept queue: neither side's CPU was busy"
    )


def test_no_samples_over_the_window_say_so_and_no_server_time_attributes_nothing() -> None:
    assert side(60, 30, CpuWindow(0, None, None, None)) == gaps.NO_SAMPLES
    unknown = attribute_gap("GET /a", 60, None, QUIET, cpu_saturation_percent=90, host_saturation_percent=95)
    assert unknown is None


def test_the_window_drops_samples_before_it_opened_and_keeps_the_busiest_locust_process() -> None:
    rows = []
    for second in range(20):
        busy = 100.0 if second < 10 else 40.0 + second  # a saturated ramp-up, then a calm steady state
        rows += [
            {"elapsed_s": second, "role": "worker-1", "pid": 1, "cpu_percent": busy},
            {"elapsed_s": second, "role": "worker-2", "pid": 2, "cpu_percent": 10.0},
            {"elapsed_s": second, "role": "master", "pid": 3, "cpu_percent": 5.0},
            {"elapsed_s": second, "role": "host", "pid": 0, "cpu_percent": 50.0},
            {"elapsed_s": second, "role": "host-steal", "pid": 0, "cpu_percent": 99.0},
            {"elapsed_s": second, "role": "service", "pid": 0, "cpu_percent": 120.0},
        ]
    rows += [  # after the load: Locust writing its reports
        {"elapsed_s": 20, "role": "worker-1", "pid": 1, "cpu_percent": 100.0},
        {"elapsed_s": 20, "role": "host", "pid": 0, "cpu_percent": 100.0},
    ]
    window = cpu_window(rows, window_opened_s=10, load_ended_s=19.5, service_processes=3, cores=2)
    assert window.samples == 10
    assert window.generator is not None and window.generator.values == tuple(50.0 + n for n in range(10))
    assert window.generator.median == 54.5 and window.generator.p90 == 58.0  # nearest rank: the 9th of 10
    assert window.host == Spread((50.0,) * 10) and window.service == Spread((120.0,) * 10)
    assert window.service_cores == 2  # three processes, two cores
    whole = cpu_window(rows, window_opened_s=0, load_ended_s=99, service_processes=3, cores=2)
    assert whole.samples == 21 and whole.generator.p90 == 100.0
    remote = [row for row in rows if row["role"] != "service"]
    assert (
        cpu_window(remote, window_opened_s=10, load_ended_s=20, service_processes=0, cores=2).service_cores
        == 0
    )


def test_the_line_shows_the_gap_its_share_the_side_and_the_cpu() -> None:
    host = replace(QUIET, host=seconds(92, 99, peaks=4))
    found = [
        attribute_gap(scope, client, server, host, cpu_saturation_percent=90, host_saturation_percent=95)
        for scope, client, server in (("all endpoints", 140, 119), ("GET /a", 150, 110), ("GET /b", 20, 18))
    ]
    line = GapReport(found[0], (found[1], found[2]), host).line()
    assert "+21 ms of the 140 ms client p95 (15%): likely this machine (generator and service share" in line
    assert "machine 92% median, 99% p90 of all cores" in line and "30 s sampled" in line
    assert "GET /a +40 ms" in line and "GET /b" not in line  # only material endpoints are listed
    small = attribute_gap(
        "all endpoints", 20, 18, host, cpu_saturation_percent=90, host_saturation_percent=95
    )
    assert (
        "+2 ms of the 20 ms client p95 (10%): negligible (below 5 ms or 10%"
        in GapReport(small, (), host).line()
    )
    assert "not measured" in GapReport(None, (), host).line()


def _run(client_p95: int, server_p95: float | None, *, cpu_warning: bool = False) -> LocustRun:
    aggregate = replace(endpoint("Aggregated", p95=client_p95), server_p95_ms=server_p95)
    return locust_run(aggregate, cpu_warning=cpu_warning)


def test_a_saturated_generator_or_host_names_a_material_gap_in_its_invalid_reason() -> None:
    busy = [99.0] * 30 + [60.0] * 10
    reasons = validate_run(
        _run(140, 119, cpu_warning=True),
        planned_duration_s=6,
        cpu_samples=busy,
        host_cpu_samples=busy,
        host_saturation_percent=95,
    ).reasons
    outside = "21 ms of the 140 ms client p95 was spent outside the handler"
    assert reasons == (
        f"locust logged its CPU warning: the load generator was above 90% CPU: {outside}",
        f"the load generator's CPU was above 90% in 75% of 40 samples: {outside}",
        "the machine's CPU was above 95% of all cores in 75% of 40 samples: latencies measured the host's "
        f"queue, not the service; {outside}",
    )
    for quiet in (_run(140, 130), _run(140, None)):  # negligible, or no server time: reasons unchanged
        assert not any("outside the handler" in reason for reason in validate_run(
            quiet, planned_duration_s=6, cpu_samples=busy, host_cpu_samples=busy, host_saturation_percent=95
        ).reasons)  # fmt: skip
    assert validate_run(_run(140, 119), planned_duration_s=6, cpu_samples=[10.0] * 40).valid


# A real HTTP server whose handler sleeps before its timed part starts: the time it reports in
# X-Response-Time leaves out SLEEP_MS that Locust still waits for, as an accept queue would.
SLEEP_MS = 40
SERVER = f"""
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep({SLEEP_MS} / 1000)  # outside the timed part: the handler's clock starts after it
        started = time.perf_counter()
        body = b'{{"ok": true}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Response-Time", f"{{(time.perf_counter() - started) * 1000:.2f}}ms")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


@pytest.fixture
def late_clock_server(tmp_path: Path) -> Iterator[str]:
    from tutormax_ops.devstack import stack as devstack

    port = devstack.free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        devstack.wait_until(lambda: devstack.port_accepts(port), timeout_s=15, what="the late-clock server")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.e2e
def test_a_real_run_against_a_handler_that_starts_its_clock_late_is_network_or_accept_queue(
    late_clock_server: str, tmp_path: Path
) -> None:
    """Locust as a subprocess (the runner's own launch and CPU sampling), the service a real process
    on this machine: the gap is the sleep the handler leaves out of its X-Response-Time, and no side's
    CPU is busy, so the line says network or accept queue."""
    from tutormax_ops.core import reports
    from tutormax_ops.core.loadtest_settings import LoadProfile
    from tutormax_ops.core.paths import LOCUST_DIR
    from tutormax_ops.loadtest.gap import judge_gap
    from tutormax_ops.loadtest.runner import run_locust

    profile = LoadProfile(
        users=5,
        spawn_rate=5,
        run_time_s=15,
        locustfile="json_api_locustfile.py",
        think_time_s=(0.05, 0.1),
        options={"routes": [{"path": "/slow"}]},
    )
    loadtest = SETTINGS.loadtest.model_copy(
        update={"profiles": {**SETTINGS.loadtest.profiles, "gap": profile}}
    )
    run_plan = plan(
        profile="gap",
        host=late_clock_server,
        users=5,
        spawn_rate=5,
        run_time_s=15,
        locustfile=str(LOCUST_DIR / "json_api_locustfile.py"),
    )
    outcome = run_locust(run_plan, loadtest, tmp_path, log=lambda line: None)
    assert outcome.window_opened_s is not None and outcome.service_processes == 1
    samples = tmp_path / "cpu_samples.csv"
    samples.write_text(reports.to_csv([asdict(sample) for sample in outcome.cpu_samples]))
    run = parse_run(
        csv_prefix=tmp_path / "locust",
        json_path=tmp_path / "locust.json",
        html_path=tmp_path / "locust.html",
        log_text=(tmp_path / "locust.log").read_text(),
    )
    found = judge_gap(run, run_plan, samples, asdict(outcome), loadtest)
    assert found is not None and found.aggregate is not None
    print(found.line())
    cpu = found.cpu
    assert cpu.samples >= 3 and cpu.service is not None and cpu.service_cores == 1
    gap = found.aggregate
    assert run.aggregate.requests > 50 and gap.server_p95_ms <= 5, found.line()
    assert SLEEP_MS <= gap.gap_ms < 10 * SLEEP_MS, found.line()
    if cpu.host is not None and cpu.host.busy(loadtest.host_saturation_percent):
        # Other work filled the machine: rule 4 comes before rule 6, as it must, and this run cannot
        # show "neither side busy".
        assert gap.side == gaps.MACHINE, found.line()
        pytest.skip(f"this machine was saturated by other work during the run: {found.line()}")
    assert gap.side == gaps.NEITHER, found.line()
    assert [(e.scope, e.side) for e in found.endpoints] == [("GET /slow", gaps.NEITHER)]
    assert "likely network or the service's accept queue: neither side's CPU was busy" in found.line()


def test_judge_gap_reads_the_steady_window_and_leaves_out_endpoints_too_few_to_judge(tmp_path: Path) -> None:
    from tutormax_ops.loadtest.gap import judge_gap

    samples = tmp_path / "cpu_samples.csv"
    lines = ["elapsed_s,role,pid,cpu_percent"]
    for second in range(30):
        busy = 100.0 if second < 6 or second > 26 else 20.0  # start-up and report writing: outside the load
        lines += [f"{second},locust,7,{busy}", f"{second},host,0,{busy}"]
    samples.write_text("\n".join(lines) + "\n")
    busy_endpoint = replace(endpoint("/a", requests=500, p95=60), server_p95_ms=20.0)
    rare = replace(endpoint("/b", requests=20, p95=90), server_p95_ms=10.0)
    run = replace(_run(60, 20), endpoints=(busy_endpoint, rare))
    smoke = plan(users=20, spawn_rate=10, run_time_s=20)  # opens 2 + 5 = 7 s after the first user
    outcome = {"window_opened_s": 8.0, "service_processes": 0}  # so the first user came 1 s in
    found = judge_gap(run, smoke, samples, outcome, SETTINGS.loadtest, min_requests=72)
    assert found is not None and found.cpu.samples == 14  # seconds 8 to 21: the load ended at 1 + 20
    assert found.cpu.generator == Spread((20.0,) * 14) and found.cpu.service is None
    assert found.aggregate is not None and found.aggregate.side == gaps.NEITHER
    assert [e.scope for e in found.endpoints] == ["GET /a"]
    assert judge_gap(None, smoke, samples, outcome, SETTINGS.loadtest) is None
    assert (
        judge_gap(run, replace(smoke, step_users=5, step_seconds=15), samples, outcome, SETTINGS.loadtest)
        is None
    )
