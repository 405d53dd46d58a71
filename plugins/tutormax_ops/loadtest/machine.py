"""Who set the limit: the whole machine's CPU (all cores, steal included), the load generator's
processes and, when the service listens on this machine, the service's processes, sampled each
second beside the run; then read back over the stress steps that decided the knee.

A stress run on a machine that also runs the service (or anything else) can saturate the machine
before the service: every request then waits for a core, and the knee measures the machine. Such a
run is "limited by this machine" and its knee is a lower bound of the service's capacity; only when
this machine ran some of the users: with every generator elsewhere, a saturated machine here is the
service's own. A run none of whose steps failed was limited by the profile's top step.
"""

from __future__ import annotations

import contextlib
import csv
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tutormax_ops.loadtest.model import (
    LIMITED_BY_MACHINE,
    LIMITED_BY_PROFILE,
    Generators,
    Limits,
    LoadStep,
    extended_users,
)

if TYPE_CHECKING:
    import psutil


HOST_ROLE = "host"  # busy % of all cores: 100 − idle − iowait, so steal counts as busy
STEAL_ROLE = "host-steal"  # % of all cores taken by the hypervisor
SERVICE_ROLE = "service"  # the service's processes together, % of one core
MACHINE_ROLES = (HOST_ROLE, STEAL_ROLE, SERVICE_ROLE)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MACHINE_LIMIT_MEANING = "the knee measures the shared host, not the service, and is a lower bound."


def host_cpu() -> tuple[float, float]:
    """(busy, steal) in % of all cores since the previous call; the first call primes the counters."""
    import psutil

    times = psutil.cpu_times_percent(None)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return round(max(0.0, 100.0 - idle), 1), round(getattr(times, "steal", 0.0), 1)


def local_service(host: str) -> list[psutil.Process]:
    """The processes serving `host` when it is this machine: whoever listens on its port, and their
    children (uvicorn's workers). Empty for a remote host or one nobody here listens for."""
    import psutil

    parts = urlsplit(host)
    if parts.hostname not in LOCAL_HOSTS:
        return []
    port = parts.port or (443 if parts.scheme == "https" else 80)
    found: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.Error):
        for connection in psutil.net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
                with contextlib.suppress(psutil.Error):
                    process = psutil.Process(connection.pid)
                    for member in (process, *process.children(recursive=True)):
                        found[member.pid] = member
    for process in found.values():
        with contextlib.suppress(psutil.Error):
            process.cpu_percent(None)  # the first reading is always 0: prime it now
    return list(found.values())


def service_cpu(processes: Sequence[psutil.Process]) -> float | None:
    """The service's processes together, in % of one core; None when none is known or left."""
    import psutil

    total, alive = 0.0, False
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.cpu_percent(None)
            alive = True
    return round(total, 1) if alive else None


@dataclass(frozen=True)
class CpuByRole:
    """The runner's CPU samples split by who used the CPU, one value per sample tick."""

    generator: list[float]  # the busiest locust process (master or worker), % of one core
    host: list[float]  # the whole machine, % of all cores
    service: list[float]  # the service's processes together, % of one core


def cpu_by_role(
    rows: Iterable[Mapping[str, Any]], *, start_s: float = -math.inf, end_s: float = math.inf
) -> CpuByRole:
    """Rows of the runner's samples (`cpu_samples.csv` rows, or `asdict` of its `CpuSample`s: elapsed_s,
    role, cpu_percent) between `start_s` and `end_s` seconds after launch. The machine's own roles
    are no locust process; of the locust processes, each tick counts the busiest, since one gevent
    process cannot use more than one core."""
    busiest: dict[float, float] = {}
    host: list[float] = []
    service: list[float] = []
    for row in rows:
        at, value = float(row["elapsed_s"]), float(row["cpu_percent"])
        if not start_s <= at <= end_s:
            continue
        if row["role"] == HOST_ROLE:
            host.append(value)
        elif row["role"] == SERVICE_ROLE:
            service.append(value)
        elif row["role"] not in MACHINE_ROLES:
            busiest[at] = max(busiest.get(at, 0.0), value)
    return CpuByRole(list(busiest.values()), host, service)


def read_samples(samples_csv_text: str, launched_at: float) -> dict[str, list[tuple[float, float]]]:
    """Per role, (epoch seconds, %) from the runner's `cpu_samples.csv`; locust's own processes are
    summed into "generator" per sample."""
    series: dict[str, list[tuple[float, float]]] = {}
    generator: dict[float, float] = {}
    for row in csv.DictReader(samples_csv_text.splitlines()):
        at, value = launched_at + float(row["elapsed_s"]), float(row["cpu_percent"])
        if row["role"] in MACHINE_ROLES:
            series.setdefault(row["role"], []).append((at, value))
        else:
            generator[at] = generator.get(at, 0.0) + value
    series["generator"] = sorted(generator.items())
    return series


def judge_limits(
    samples: Mapping[str, Sequence[tuple[float, float]]],
    steps: Sequence[LoadStep],
    *,
    cores: int,
    generators: Generators,
    host_saturation_percent: float,
    cpu_saturation_percent: float,
    max_saturated_fraction: float,
) -> Limits:
    """Which resource ran out at the first failing step: this machine when it ran users (its CPU
    above `host_saturation_percent` in more than `max_saturated_fraction` of the samples), else a
    local generator process at its one core, else the service. No step failed: the profile's top
    step, whatever the machine did (the note says how busy it was)."""
    # Where the limit showed: the first failing step (else the last), over its settled part.
    deciding = next((step for step in steps if not step.meets_targets), steps[-1])
    begin, end = deciding.start, deciding.start + deciding.seconds

    def within(role: str) -> list[float]:
        return [value for at, value in samples.get(role, ()) if begin <= at <= end]

    host, generator, service = within(HOST_ROLE), within("generator"), within(SERVICE_ROLE)
    whole_host = [value for _, value in samples.get(HOST_ROLE, ())]
    steal = [value for _, value in samples.get(STEAL_ROLE, ())]
    saturated = sum(1 for value in host if value > host_saturation_percent) / len(host) if host else None
    local_processes = generators.processes if generators.here else 0
    busiest = max(generator, default=0.0) / max(local_processes, 1)
    if deciding.meets_targets:
        limited_by = LIMITED_BY_PROFILE
    elif generators.here and saturated is not None and saturated > max_saturated_fraction:
        limited_by = LIMITED_BY_MACHINE
    elif generators.here and busiest > cpu_saturation_percent:
        limited_by = "the load generator"
    else:
        limited_by = "the service"
    limits = Limits(
        limited_by=limited_by,
        at_users=deciding.users,
        failed=not deciding.meets_targets,
        host_busy_pct=statistics.median(host) if host else None,
        host_peak_pct=max(whole_host, default=None),
        saturated_fraction=saturated,
        steal_peak_pct=max(steal, default=None),
        generator_pct=statistics.median(generator) if generator else None,
        service_pct=statistics.median(service) if service else None,
        cores=cores,
        generators=generators,
        note="",
    )
    return _with_note(limits, host_saturation_percent)


def _with_note(limits: Limits, host_saturation_percent: float) -> Limits:
    from dataclasses import replace

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.0f}%"

    machine = (
        f"During the {'first failing' if limits.failed else 'last'} step ({limits.at_users} users) the "
        f"machine ({limits.cores} cores, steal included) was {pct(limits.host_busy_pct)} busy (median), above "
        f"{host_saturation_percent:g}% in "
        f"{pct(None if limits.saturated_fraction is None else 100 * limits.saturated_fraction)} of its samples"
    )
    parts = [f"The load came from {limits.generators.describe()}", machine]
    # Each worker is one gevent process, at most one core: how much of the machine they used,
    # beside how busy the machine was, says whether the generator or its neighbours filled it.
    share = None if limits.generator_pct is None else limits.generator_pct / limits.cores
    local = limits.generators.processes if limits.generators.here else 0
    who = f"the {local} local workers" if local > 1 else "the local load generator" if local else "the master"
    parts.append(f"{who} used {pct(limits.generator_pct)} of one core in total ({pct(share)} of the machine)")
    if limits.service_pct is not None:
        parts.append(
            f"the service's processes {pct(limits.service_pct)} of one core ({pct(limits.service_pct / limits.cores)} of the machine)"
        )
    text = "; ".join(parts) + "."
    if limits.limited_by == LIMITED_BY_MACHINE:
        return replace(limits, note=f"Limited by this machine: {MACHINE_LIMIT_MEANING} {text}")
    if limits.limited_by == LIMITED_BY_PROFILE:
        saturated = (limits.saturated_fraction or 0.0) > 0 and limits.generators.here
        return replace(
            limits,
            note=(
                f"Limited by the profile's top step: every step met the targets up to {limits.at_users} users, "
                f"so the knee is a lower bound; extend users to {extended_users(limits.at_users)} to find it"
                + (
                    " (with more generator hosts: this machine was already saturated at times)"
                    if saturated
                    else ""
                )
                + f". {text}"
            ),
        )
    return replace(limits, note=f"Limited by {limits.limited_by}. {text}")
