"""Run the service under uvicorn: ``python -m tutormax_service.serve --port 8000 [--workers N]``.

Configuration comes from the TUTORMAX_SERVICE_* environment variables (see settings.py),
which every worker process reads for itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn


def uvicorn_options(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """uvicorn's settings from the command line, beside the app's import string."""
    parser = argparse.ArgumentParser(
        prog="python -m tutormax_service.serve", description="Serve the TutorMax API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="uvicorn worker processes (default: one per usable core; each handler is async, so one "
        "worker keeps a core busy, and more only contend for the same cores)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (off by default: it skews load tests)"
    )
    args = parser.parse_args(argv)
    return {
        "factory": True,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "log_level": args.log_level,
        "access_log": args.access_log,
        # No proxy in front: X-Forwarded-* rewriting would be a middleware layer on every request.
        "proxy_headers": False,
        # Named, not "auto": without uvloop or httptools installed, uvicorn would quietly fall back
        # to asyncio's loop and h11, several times the CPU per request. The protocol is httptools'
        # with each response's headers and body sent in one write (see tutormax_service.http).
        "loop": "uvloop",
        "http": "tutormax_service.http:OneWriteHttpToolsProtocol",
    }


def main(argv: Sequence[str] | None = None) -> int:
    # An import string + factory (not an app object) is what lets uvicorn spawn several workers.
    uvicorn.run("tutormax_service.app:create_app", **uvicorn_options(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
