"""Cache warming throughput and clearing cost (issue 12).

(a) Warming 10,000 tutor dashboards of the reference service (10,000 tutors generated), the rate
    limit off, with the configured concurrency (`cache_warm.concurrency`), divided by the service's
    raw capacity for the same GETs: the same client code (`cache.warm.run_requests`, one httpx
    AsyncClient with its default pool) with no bound of its own: 100 workers, one per connection
    of that pool, no rate limit. Both start from an empty cache, so both do the same database
    work. Target: ratio >= 0.8.
(b) Clearing 1,000,000 keys by pattern (SCAN + UNLINK, `cache.keys.clear`) in a fresh worker
    process: the time and that process's peak RSS (a streaming clear keeps it flat).

The last line printed is one JSON object: warm_ratio, warm_per_s, clear_s, clear_peak_rss_mb.

    .venv/bin/python bench/cache.py             # about 10 minutes on 2 cores
    .venv/bin/python bench/cache.py --quick     # 2,000 dashboards and 200,000 keys
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

import httpx  # noqa: E402
import redis  # noqa: E402

from tutormax_ops.cache.keys import clear  # noqa: E402
from tutormax_ops.cache.warm import Pacing, Request, TargetResult, run_requests  # noqa: E402
from tutormax_ops.core.config import load_settings  # noqa: E402
from tutormax_ops.core.paths import STATE_DIR  # noqa: E402
from tutormax_ops.devstack import stack as devstack  # noqa: E402

PREFIX = "tutormax:cache:"


def _empty_cache(url: str) -> None:
    client = redis.Redis.from_url(url)
    clear(client, PREFIX + "*", dry_run=False, scan_count=1000, unlink_batch=500)
    client.close()


def _timed(requests: list[Request], pacing: Pacing) -> TargetResult:
    async def run() -> TargetResult:
        async with httpx.AsyncClient(timeout=pacing.timeout_s) as client:  # httpx's default limits
            return await run_requests("bench", requests, pacing, client=client)

    return asyncio.run(run())


def bench_warm(dashboards: int) -> tuple[float, float, float]:
    """(warm req/s, raw req/s, ratio) on a fresh stack with `dashboards` tutors."""
    settings = load_settings()
    root = STATE_DIR / "bench" / f"cache_{os.getpid()}"
    with devstack.running_stack(root / "stack") as stack:
        db_url = stack.endpoints.db_url
        devstack.migrate_service_schema(db_url)
        generate = [
            sys.executable,
            "-m",
            "tutormax_service.datagen",
            "--database-url",
            devstack.sqlalchemy_url(db_url),
        ]
        generate += ["--days", "1", "--sessions-per-day", "20000", "--tutors", str(dashboards)]
        subprocess.run(generate, env=devstack.python_env(), check=True, capture_output=True)
        host = stack.start_service()
        requests = [
            Request("GET", f"{host}/api/tutors/{tutor_id}/dashboard") for tutor_id in range(1, dashboards + 1)
        ]
        warm_pacing = Pacing(settings.cache_warm.concurrency, 0, 0, 0, 60)

        # Unbounded for the service: as many workers as the client has connections (httpx's default
        # pool, 100); more tasks than that only queue inside httpcore's pool, whose wait list costs
        # O(waiters) per request (one task per request made 10,000 GETs client-bound here).
        raw_pacing = Pacing(100, 0, 0, 0, 60)

        _timed(requests[:200], warm_pacing)  # connections, imports, plans: not part of either figure
        figures = {}
        for name, pacing in (("raw", raw_pacing), ("warm", warm_pacing)):
            _empty_cache(stack.endpoints.redis_url)
            result = _timed(requests, pacing)
            assert result.ok == len(requests), (name, result.failed, result.errors)
            figures[name] = result.requested / result.seconds
            print(
                f"(a) {name}: {result.requested} dashboards in {result.seconds:.2f} s = {figures[name]:.0f}/s, p95 {result.p95_ms} ms"
            )
    shutil.rmtree(root, ignore_errors=True)
    ratio = figures["warm"] / figures["raw"]
    print(
        f"(a) warm / raw capacity = {ratio:.2f} (target >= 0.8), concurrency {settings.cache_warm.concurrency} vs unbounded"
    )
    return figures["warm"], figures["raw"], ratio


def bench_clear(keys: int) -> tuple[float, float]:
    root = STATE_DIR / "bench" / f"cache_clear_{os.getpid()}"
    with devstack.running_stack(root / "stack") as stack:
        url = stack.endpoints.redis_url
        client = redis.Redis.from_url(url)
        with client.pipeline(transaction=False) as pipe:
            for number in range(keys):
                pipe.set(f"{PREFIX}bench:{number}", b"x")
                if number % 20_000 == 19_999:
                    pipe.execute()
            pipe.execute()
        client.set("tutormax:metrics:bench:keep", b"1")
        worker = subprocess.run(
            [sys.executable, __file__, "--clear-worker", url], capture_output=True, text=True, check=True
        )
        measured = json.loads(worker.stdout.strip().splitlines()[-1])
        assert measured["removed"] == keys and client.dbsize() == 1, measured
        client.close()
    shutil.rmtree(root, ignore_errors=True)
    print(
        f"(b) cleared {keys:,} keys in {measured['seconds']:.2f} s, worker peak RSS {measured['peak_rss_mb']:.1f} MB "
        f"({measured['rss_before_mb']:.1f} MB after its imports, before the clear)"
    )
    return measured["seconds"], measured["peak_rss_mb"]


def clear_worker(url: str) -> None:
    client = redis.Redis.from_url(url)
    before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    result = clear(client, PREFIX + "bench:*", dry_run=False, scan_count=1000, unlink_batch=500)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"removed": result.removed, "seconds": result.seconds, "peak_rss_mb": round(peak_mb, 1)}
    print(json.dumps(figures | {"rss_before_mb": round(before_mb, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clear-worker", metavar="REDIS_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clear_worker:
        clear_worker(args.clear_worker)
        return
    warm_per_s, _raw, ratio = bench_warm(2_000 if args.quick else 10_000)
    clear_s, peak = bench_clear(200_000 if args.quick else 1_000_000)
    print(
        json.dumps(
            {
                "warm_ratio": round(ratio, 3),
                "warm_per_s": round(warm_per_s, 1),
                "clear_s": round(clear_s, 3),
                "clear_peak_rss_mb": peak,
            }
        )
    )


if __name__ == "__main__":
    main()
