"""The package's import rules, read from the source with `ast` (nothing is imported):

- imports point downward: nothing in `core/` imports a capability, `collectors/` or the devstack;
  `collectors/` import only `core/` and each other;
- no runtime module (the package outside `devstack/`, the DAGs, the plugin entry file) imports
  `tutormax_ops.devstack`: it is development and CI tooling an Airflow worker never needs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tutormax_ops.core.paths import PROJECT_ROOT

PACKAGE = "tutormax_ops"


def imported_modules(path: Path, module: str) -> Iterator[str]:
    """Every module `path` imports, at the top or inside a function, relative imports resolved."""
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".rstrip(".")
            yield base
            # `from tutormax_ops import devstack` names the subpackage in the alias
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _module_name(path: Path, plugins_dir: Path) -> str:
    parts = path.relative_to(plugins_dir).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _area(module: str) -> str:
    """`tutormax_ops.core.db` -> `core`; a top-level module of the package is its own area."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _within(module: str, area: str) -> bool:
    return module == f"{PACKAGE}.{area}" or module.startswith(f"{PACKAGE}.{area}.")


ALLOWED_BELOW = {"core": {"core"}, "collectors": {"core", "collectors"}}


def violations(root: Path) -> list[str]:
    """The import rules broken under `root` (a project folder with plugins/ and dags/)."""
    plugins_dir = root / "plugins"
    found: list[str] = []
    runtime_files = [root / "plugins" / f"{PACKAGE}_plugin.py", *sorted((root / "dags").glob("*.py"))]
    for path in sorted((plugins_dir / PACKAGE).rglob("*.py")):
        module = _module_name(path, plugins_dir)
        area = _area(module)
        if area != "devstack":
            runtime_files.append(path)
        for target in imported_modules(path, module):
            if not target.startswith(f"{PACKAGE}."):
                continue
            allowed = ALLOWED_BELOW.get(area)
            target_area = _area(target)
            if allowed is not None and target_area and target_area not in allowed:
                found.append(f"{path.relative_to(root)}: {area}/ imports {target}")
    for path in runtime_files:
        module = _module_name(path, plugins_dir) if path.is_relative_to(plugins_dir) else path.stem
        found.extend(
            f"{path.relative_to(root)}: a runtime module imports {target}"
            for target in imported_modules(path, module)
            if _within(target, "devstack")
        )
    return sorted(set(found))


def test_the_package_keeps_its_import_rules() -> None:
    assert violations(PROJECT_ROOT) == []


UPWARD = {
    "plugins/tutormax_ops/core/db.py": "from tutormax_ops.core.paths import SQL_DIR\n",
    "plugins/tutormax_ops/core/notify.py": "def f():\n    from tutormax_ops.loadtest import plan\n",
    "plugins/tutormax_ops/collectors/redis.py": "from ..maintenance import vacuum\n",
}
UPWARD_REPORTED = [
    "plugins/tutormax_ops/collectors/redis.py: collectors/ imports tutormax_ops.maintenance",
    "plugins/tutormax_ops/collectors/redis.py: collectors/ imports tutormax_ops.maintenance.vacuum",
    "plugins/tutormax_ops/core/notify.py: core/ imports tutormax_ops.loadtest",
    "plugins/tutormax_ops/core/notify.py: core/ imports tutormax_ops.loadtest.plan",
]
INTO_DEVSTACK = {
    "plugins/tutormax_ops/devstack/demo.py": "from tutormax_ops.devstack import stack\n",
    "plugins/tutormax_ops/loadtest/runner.py": "from tutormax_ops import devstack\n",
    "dags/tutormax_x.py": "import tutormax_ops.devstack.stack\n",
}
INTO_DEVSTACK_REPORTED = [
    "dags/tutormax_x.py: a runtime module imports tutormax_ops.devstack.stack",
    "plugins/tutormax_ops/loadtest/runner.py: a runtime module imports tutormax_ops.devstack",
]


@pytest.mark.parametrize(
    ("files", "reported"),
    [(UPWARD, UPWARD_REPORTED), (INTO_DEVSTACK, INTO_DEVSTACK_REPORTED)],
    ids=["upward-from-core-and-collectors", "runtime-into-devstack"],
)
def test_a_broken_rule_is_reported(tmp_path: Path, files: dict[str, str], reported: list[str]) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / f"{PACKAGE}_plugin.py").write_text("from tutormax_ops.web.plugin import P\n")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert violations(tmp_path) == reported
