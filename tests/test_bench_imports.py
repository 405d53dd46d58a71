"""Every `from tutormax_ops… import name` in bench/ names something that exists: the benchmarks run
outside `make test`, so a moved function would otherwise surface only when someone runs them."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

from tutormax_ops.core.paths import PROJECT_ROOT

BENCH_SCRIPTS = sorted((PROJECT_ROOT / "bench").rglob("*.py"))


def _package_imports(path: Path) -> list[tuple[str, str]]:
    return [
        (node.module, alias.name)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tutormax_ops")
        for alias in node.names
    ]


def _exists(module: str, name: str) -> bool:
    imported = importlib.import_module(module)
    if hasattr(imported, name):
        return True
    # `from package import submodule` of a submodule the package does not import itself
    return hasattr(imported, "__path__") and importlib.util.find_spec(f"{module}.{name}") is not None


@pytest.mark.parametrize("script", BENCH_SCRIPTS, ids=lambda path: path.name)
def test_every_name_a_benchmark_imports_exists(script: Path) -> None:
    missing = [f"{module}.{name}" for module, name in _package_imports(script) if not _exists(module, name)]
    assert missing == [], f"{script.name} imports names that do not exist: {missing}"
