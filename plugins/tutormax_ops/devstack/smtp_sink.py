"""A local SMTP sink: every message it accepts is stored as an `.eml` file, so tests can assert on
emails and a person can open them after the demo. Run: `python -m tutormax_ops.devstack.smtp_sink`."""

from __future__ import annotations

import argparse
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class MaildirHandler:
    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        partial = self.maildir / f".{name}.part"
        # Write then rename, so a reader never sees half a message.
        partial.write_bytes(envelope.original_content or envelope.content)
        partial.rename(self.maildir / name)
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args()
    args.maildir.mkdir(parents=True, exist_ok=True)
    controller = Controller(MaildirHandler(args.maildir), hostname=args.host, port=args.port)
    controller.start()
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    print(f"SMTP sink on {args.host}:{args.port}, writing to {args.maildir}", flush=True)
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()
