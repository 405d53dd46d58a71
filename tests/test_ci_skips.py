"""With CI=true, an end-to-end test (one using the `stack` fixture) that skips is a failure, unless
marked `server_variant`; without CI it stays a skip. Runs tests/conftest.py's hook in a child pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tutormax_ops.core.paths import PROJECT_ROOT

SHIM = f"""
import importlib.util
import pytest

spec = importlib.util.spec_from_file_location("suite_conftest", {str(PROJECT_ROOT / "tests" / "conftest.py")!r})
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)
pytest_runtest_makereport = suite.pytest_runtest_makereport


@pytest.fixture
def stack():
    return None  # the hook looks at the fixture's name; no server is needed to skip
"""
TESTS = """
import pytest

def test_end_to_end(stack):
    pytest.skip("no server here")

@pytest.mark.server_variant
def test_variant(stack):
    pytest.skip("only on other servers")

def test_unit():
    pytest.skip("not end-to-end")
"""


@pytest.mark.parametrize(("ci", "expected"), [("true", "1 failed, 2 skipped"), ("", "3 skipped")])
def test_a_skipping_end_to_end_test_fails_under_ci(tmp_path: Path, ci: str, expected: str) -> None:
    (tmp_path / "conftest.py").write_text(SHIM)
    (tmp_path / "test_probe.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    server_variant: x\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "CI": ci},
    )
    assert expected in result.stdout, result.stdout[-3000:]
    if ci:
        assert "an end-to-end test may not skip with CI=true: Skipped: no server here" in result.stdout
