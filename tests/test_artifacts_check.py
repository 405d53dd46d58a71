"""The session-end check of tests/conftest.py: a session in which a test wrote a run folder into the
checkout's .tutormax/artifacts fails, naming it; one that did not passes. Runs the suite's fixtures
in a child pytest, with the checked folder moved to a temporary one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tutormax_ops.core.paths import PROJECT_ROOT

SHIM = f"""
import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("suite_conftest", {str(PROJECT_ROOT / "tests" / "conftest.py")!r})
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)
suite.CHECKOUT_ARTIFACTS = Path(__file__).parent / "checkout_artifacts"
_stop_on_signals = suite._stop_on_signals
_own_artifacts = suite._own_artifacts
"""
TESTS = """
import os
from pathlib import Path
from urllib.parse import urlsplit

def test_writes(tmp_path):
    # Each test's own folder, never the checked one.
    assert urlsplit(os.environ["TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE"]).path.startswith(str(tmp_path))
    if os.environ.get("PROBE_LEAK"):
        run = Path(__file__).parent / "checkout_artifacts" / "tutormax_load_test" / "manual__leaked"
        run.mkdir(parents=True)
"""


@pytest.mark.parametrize(("leak", "expected"), [("1", "1 passed, 1 error"), ("", "1 passed in")])
def test_a_session_that_writes_into_the_checkouts_artifacts_fails(
    tmp_path: Path, leak: str, expected: str
) -> None:
    (tmp_path / "checkout_artifacts" / "tutormax_load_test" / "manual__older").mkdir(parents=True)
    (tmp_path / "conftest.py").write_text(SHIM)
    (tmp_path / "test_probe.py").write_text(TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PROBE_LEAK": leak},
    )
    assert expected in result.stdout, result.stdout[-3000:]
    named = "tests wrote into the checkout's" in result.stdout and "manual__leaked" in result.stdout
    assert named == bool(leak), result.stdout[-3000:]
    assert "manual__older" not in result.stdout  # what was there before the session is not blamed
