"""Where the project's non-Python files live, resolved from this package's location."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
INCLUDE_DIR = PROJECT_ROOT / "include"
SQL_DIR = INCLUDE_DIR / "sql"
CONFIG_DIR = INCLUDE_DIR / "config"
TEMPLATES_DIR = INCLUDE_DIR / "templates"
LOCUST_DIR = INCLUDE_DIR / "locust"
SERVICE_DIR = INCLUDE_DIR / "tutormax_service"
STATE_DIR = PROJECT_ROOT / ".tutormax"
