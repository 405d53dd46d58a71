"""What the findings may show of statement texts."""

from __future__ import annotations

from tutormax_ops.maintenance.findings import sanitize_query


def test_statement_texts_lose_passwords_and_url_credentials() -> None:
    query = "ALTER ROLE app PASSWORD 'it''s secret'; SELECT dblink('postgresql://app:hunter2@db/x', $1)"
    assert (
        sanitize_query(query) == "ALTER ROLE app PASSWORD '***'; SELECT dblink('postgresql://***@db/x', $1)"
    )
