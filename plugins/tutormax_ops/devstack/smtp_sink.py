"""A local SMTP sink: every message it accepts is stored as an `.eml` file, so tests can assert on
emails and a person can open them after the demo. Run:
`python -m tutormax_ops.devstack.smtp_sink --port N --maildir DIR [--login L --password-file F]`.

With a login, it accepts mail only after AUTH (PLAIN or LOGIN) with that login and the password in
the file (without TLS: it listens on loopback only, and the point is that the password is real).
Files are named `<arrival number>-<time>.eml`, so their lexical order is their arrival order.
"""

from __future__ import annotations

import argparse
import hmac
import itertools
import signal
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class MaildirHandler:
    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        # Continue after the files already there, so a restarted sink keeps the order.
        self.numbers = itertools.count(len(list(maildir.glob("*.eml"))) + 1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # One event loop thread handles every message: the counter needs no lock.
        name = f"{next(self.numbers):06d}-{time.strftime('%Y%m%dT%H%M%S')}.eml"
        partial = self.maildir / f".{name}.part"
        # Write then rename, so a reader never sees half a message.
        partial.write_bytes(envelope.original_content or envelope.content)
        partial.rename(self.maildir / name)
        return "250 Message accepted for delivery"


class Authenticator:
    """Accepts exactly one login and password; compares in constant time."""

    def __init__(self, login: str, password: str) -> None:
        self.login = login.encode()
        self.password = password.encode()

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and hmac.compare_digest(auth_data.login, self.login)
            and hmac.compare_digest(auth_data.password, self.password)
        )
        return AuthResult(success=ok, handled=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    parser.add_argument("--login", help="require AUTH with this login")
    parser.add_argument(
        "--password-file", type=Path, help="the password for --login (never on the command line)"
    )
    args = parser.parse_args()
    if bool(args.login) != bool(args.password_file):
        parser.error("--login and --password-file go together")
    args.maildir.mkdir(parents=True, exist_ok=True)
    auth: dict[str, Any] = {}
    if args.login:
        authenticator = Authenticator(args.login, args.password_file.read_text())
        auth = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False}
    controller = Controller(MaildirHandler(args.maildir), hostname=args.host, port=args.port, **auth)
    controller.start()
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    print(f"SMTP sink on {args.host}:{args.port}, writing to {args.maildir}", flush=True)
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()
