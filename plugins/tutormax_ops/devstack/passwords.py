"""Per-stack passwords for the self-started servers, and where they are kept.

Each password mixes URL-unsafe characters (`/`, `@`, `%`, `+`, `:`) into random text, so a URL
built without encoding it fails at once instead of in a user's deployment, and a leak of it (raw or
URL-encoded) is found by a plain text search. It goes to a server only through a 0600 file or
stdin, never on a command line (`ps` shows those to every user).
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit

# No quote, backslash, space or '#': those need escaping in redis.conf and libpq key=value strings.
_UNSAFE = "/@%+:"


def new_password() -> str:
    """Random text (about 120 bits) with every character of `_UNSAFE` in it."""
    token = secrets.token_urlsafe(15)
    return f"{token[:10]}/{token[10:]}@%+:{secrets.token_hex(4)}"


def forms(password: str) -> list[str]:
    """The ways a password may appear in text: raw and URL-encoded (both encoders' spellings)."""
    return sorted({password, quote(password, safe=""), quote_plus(password)})


def write_private(path: Path, text: str, *, owner: str | None = None) -> Path:
    """Write `text` to `path` readable by its owner only (`owner`: chown to that user too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    if owner:
        shutil.chown(path, owner, owner)
    return path


def with_credentials(url: str, user: str, password: str) -> str:
    """`url` with `user:password@` (both URL-encoded) in front of its host."""
    parts = urlsplit(url)
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=auth + netloc).geturl()
