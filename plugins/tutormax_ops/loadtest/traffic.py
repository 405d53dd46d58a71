"""A profile's traffic: its locustfile (checked before any load), the user classes and tags Locust
runs, and what the locustfile reads from its environment (think time, options, ids).

The locustfile runs only in Locust's own processes, never here: importing locust gevent-patches the
process that imports it. `include/locust/describe_locustfile.py` imports it with Locust's own loader
and lists its user classes and their tasks' tags without starting a test (no `test_start`, no
request), which is how a missing or broken file, an unknown user class or a tag no task carries is
told before the guard or the run sends anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from tutormax_ops.core.config import Settings
from tutormax_ops.core.loadtest_settings import LoadProfile, LoadTest
from tutormax_ops.core.paths import LOCUST_DIR

# What include/locust/run_data.py reads in a single locust and the master (which hands it to its
# workers); the names are repeated there, since this module is never imported beside locust.
THINK_TIME_ENV = "TUTORMAX_LOCUST_THINK_TIME"  # "min,max" seconds
OPTIONS_ENV = "TUTORMAX_LOCUST_OPTIONS"  # the profile's `options`, as JSON
IDS_ENV = "TUTORMAX_LOCUST_IDS"  # a JSON file with the profile's ids, when it names any
IDS_FILE = "ids.json"
LIST_TIMEOUT_S = 60
DESCRIBE = LOCUST_DIR / "describe_locustfile.py"


class LocustfileError(AirflowFailException):
    """A profile's locustfile is missing or cannot be loaded; a retry cannot fix the config, so none."""


def resolve_locustfile(profile: LoadProfile) -> Path:
    """An absolute path as given; anything else under include/locust/."""
    path = Path(profile.locustfile).expanduser()
    return path if path.is_absolute() else LOCUST_DIR / path


def base_env() -> dict[str, str]:
    """The task's environment without Airflow's settings and connections (Locust needs no secret).
    include/locust/ goes on PYTHONPATH, so a locustfile kept elsewhere can import `loop_clock` and
    `server_time` as the shipped ones do."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(LOCUST_DIR), env.get("PYTHONPATH"))))
    return env


def traffic_env(profile: LoadProfile, loadtest: LoadTest, folder: Path) -> dict[str, str]:
    """What the locustfile reads: think time, the profile's options and, when it names ids, their file."""
    low, high = profile.think_time_s or loadtest.think_time_s
    env = {THINK_TIME_ENV: f"{low:g},{high:g}", OPTIONS_ENV: json.dumps(profile.options)}
    if profile.ids is not None:
        env[IDS_ENV] = str(folder / IDS_FILE)
    return env


def selection_args(user_classes: tuple[str, ...] | list[str], tags: tuple[str, ...] | list[str]) -> list[str]:
    """Locust's positional user classes, then `-T` tags; placed right after `-f`, so no later option
    is read as a tag."""
    return [*user_classes, *(["-T", *tags] if tags else [])]


def check_locustfile(profile_name: str, loadtest: LoadTest) -> list[str]:
    """The user classes the locustfile defines, loaded with the environment the run gives it;
    `LocustfileError` naming the profile's field and the path when it is missing, cannot be loaded,
    lacks a user class the profile names, or no task of the chosen classes carries one of its tags."""
    profile = loadtest.profiles[profile_name]
    path = resolve_locustfile(profile)
    field = f"loadtest.profiles.{profile_name}"
    if not path.is_file():
        raise LocustfileError(f"{field}.locustfile: {path} does not exist (no request was sent)")
    try:
        # Its ids file does not exist yet: a locustfile reads it when the load starts, not on import.
        with tempfile.TemporaryDirectory(prefix="tutormax-locustfile-") as scratch:
            described = subprocess.run(
                [sys.executable, str(DESCRIBE), str(path)],
                env={**base_env(), **traffic_env(profile, loadtest, Path(scratch))},
                cwd=scratch,
                capture_output=True,
                text=True,
                timeout=LIST_TIMEOUT_S,
                check=False,
            )
    except subprocess.TimeoutExpired:
        raise LocustfileError(
            f"{field}.locustfile: {path} did not load within {LIST_TIMEOUT_S} s (no request was sent)"
        ) from None
    lines = described.stdout.strip().splitlines()
    tags_by_class: dict[str, list[str]] = json.loads(lines[-1]) if described.returncode == 0 and lines else {}
    if not tags_by_class:
        error = (
            (described.stderr.strip().splitlines() or ["no output"])[-1]
            if described.returncode != 0
            else "it defines no User class"
        )
        raise LocustfileError(
            f"{field}.locustfile: {path} could not be loaded by Locust: {error} (no request was sent)"
        )
    classes = list(tags_by_class)
    missing = sorted(set(profile.user_classes) - set(classes))
    if missing:
        raise LocustfileError(f"{field}.user_classes: {missing} are not in {path} (it has {classes})")
    known = sorted({tag for name in profile.user_classes or classes for tag in tags_by_class[name]})
    unknown = sorted(set(profile.tags) - set(known))
    if unknown:
        raise LocustfileError(
            f"{field}.tags: {unknown} are on no task of {list(profile.user_classes or classes)} in {path} "
            f"(its tags: {known or 'none'}; no request was sent)"
        )
    return classes


def write_ids(settings: Settings, profile_name: str, folder: Path) -> int | None:
    """Write the profile's ids to `folder`'s ids file: its list, or its SQL query's first column on
    `tutormax_db` (read-only, with the collectors' timeouts). Returns how many, None without ids."""
    profile = settings.profile(profile_name)
    if profile.ids is None:
        return None
    values: list[Any] = list(profile.ids.values)
    if profile.ids.sql.strip():
        from psycopg import sql

        from tutormax_ops.loadtest.guard import service_db

        query = sql.SQL(profile.ids.sql)  # type: ignore[arg-type] - the operator's own query, from config
        with service_db(settings, read_only=True) as conn:
            values = [row[0] for row in conn.execute(query, profile.ids.sql_params or None).fetchall()]
    if not values:
        raise LocustfileError(
            f"loadtest.profiles.{profile_name}.ids.sql returned no row: no ids to load with"
        )
    (folder / IDS_FILE).write_text(json.dumps(values, default=str))
    return len(values)
