"""The client/server p95 gap and its likely side: each rule on hand-built CPU samples, the steady
window, the line the report shows and the invalid reasons that name the gap."""

from __future__ import annotations

from dataclasses import replace

import pytest

from loadtest.factories import endpoint
from tutormax_ops.collectors.locust import LocustRun
from tutormax_ops.loadtest import gap as gaps
from tutormax_ops.loadtest.gap import CpuWindow, GapReport, Spread, attribute_gap, cpu_window, material_gap
from tutormax_ops.loadtest.validity import validate_run

IDLE = Spread(20.0, 30.0)
QUIET = CpuWindow(
    samples=30, generator=IDLE, host=Spread(40.0, 55.0), service=Spread(50.0, 80.0), service_cores=2
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
    saturated = replace(QUIET, generator=Spread(99.0, 100.0))
    assert side(client, server, saturated) == gaps.NEGLIGIBLE
    assert material_gap(client, server) == ""


def test_a_busy_generator_is_the_likely_side_before_the_host_and_the_service() -> None:
    everything = CpuWindow(30, Spread(85.0, 97.0), Spread(97.0, 100.0), Spread(190.0, 200.0), 2)
    assert side(140, 109, everything) == gaps.GENERATOR


def test_a_saturated_host_is_this_machine_named_by_whether_the_service_shares_it() -> None:
    host = replace(QUIET, host=Spread(90.0, 99.0))
    assert side(140, 109, host) == gaps.MACHINE == "this machine (generator and service share its cores)"
    assert side(140, 109, replace(host, service=None, service_cores=0)) == gaps.MACHINE_REMOTE


def test_service_processes_busy_near_their_cores_are_the_accept_queue() -> None:
    busy = replace(QUIET, service=Spread(170.0, 185.0))  # 2 usable cores: above 2 x 90%
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
    window = cpu_window(rows, window_opened_s=10, service_processes=3, cores=2)
    assert window.samples == 10
    assert window.generator == Spread(54.5, 58.0)  # seconds 10-19: 50..59, nearest-rank p90 is the 9th
    assert window.host == Spread(50.0, 50.0) and window.service == Spread(120.0, 120.0)
    assert window.service_cores == 2  # three processes, two cores
    assert cpu_window(rows, window_opened_s=0, service_processes=3, cores=2).generator.p90 == 100.0
    remote = [row for row in rows if row["role"] != "service"]
    assert cpu_window(remote, window_opened_s=10, service_processes=0, cores=2).service_cores == 0


def test_the_line_shows_the_gap_its_share_the_side_and_the_cpu() -> None:
    host = replace(QUIET, host=Spread(92.0, 99.0))
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
    return LocustRun(
        endpoints=(),
        aggregate=aggregate,
        window=None,
        started_at=None,
        ended_at=None,
        duration_s=6.0,
        peak_users=1,
        html_report_present=True,
        cpu_warning=cpu_warning,
    )


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
