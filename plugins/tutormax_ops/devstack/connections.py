"""The Airflow connections (`AIRFLOW_CONN_*` JSON) for the servers in use, built from their URLs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


def postgres_connection(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    return {
        "conn_type": "postgres",
        "host": parts.hostname,
        "port": parts.port or 5432,
        "login": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "schema": parts.path.lstrip("/") or "postgres",
    }


def redis_connection(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    return {
        "conn_type": "redis",
        "host": parts.hostname,
        "port": parts.port or 6379,
        "login": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "extra": {"db": int(parts.path.lstrip("/") or 0), "ssl": parts.scheme == "rediss"},
    }


def http_connection(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    return {"conn_type": "http", "host": parts.hostname, "port": parts.port, "schema": parts.scheme}


def smtp_connection(url: str, *, from_email: str = "tutormax-ops@localhost") -> dict[str, object]:
    parts = urlsplit(url)
    query = {key: values[-1].lower() for key, values in parse_qs(parts.query).items()}
    return {
        "conn_type": "smtp",
        "host": parts.hostname,
        "port": parts.port or 25,
        "login": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "extra": {
            "disable_ssl": query.get("ssl", "false") != "true",
            "disable_tls": query.get("tls", "false") != "true",
            "from_email": query.get("from", from_email),
            "timeout": 10,
            "retry_limit": 1,
        },
    }


@dataclass(frozen=True)
class Endpoints:
    """Where each server is, as URLs (credentials included: never log this object)."""

    db_url: str
    results_url: str
    redis_url: str
    smtp_url: str
    api_url: str | None = None
    maildir: Path | None = None

    def airflow_env(self) -> dict[str, str]:
        """`AIRFLOW_CONN_*` variables, so every hook finds its server through the env backend."""
        connections = {
            "TUTORMAX_DB": postgres_connection(self.db_url),
            "TUTORMAX_RESULTS": postgres_connection(self.results_url),
            "TUTORMAX_REDIS": redis_connection(self.redis_url),
            "SMTP_DEFAULT": smtp_connection(self.smtp_url),
        }
        if self.api_url:
            connections["TUTORMAX_API"] = http_connection(self.api_url)
        return {f"AIRFLOW_CONN_{name}": json.dumps(conn) for name, conn in connections.items()}
