from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from tutormax_ops.core.reports import data_uri_png, human_bytes, line_chart_png, to_csv, to_json


def test_chart_is_a_real_png_and_embeds_as_a_data_uri() -> None:
    png = line_chart_png(
        {"dead tuples": [(datetime(2026, 11, day, tzinfo=UTC), float(day * 100)) for day in (1, 8, 15)]},
        title="Dead tuples per week",
        ylabel="rows",
    )
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 2000  # axes, labels and a line, not an empty canvas
    assert data_uri_png(png).startswith("data:image/png;base64,iVBOR")


def test_tables_round_trip_through_csv_and_json() -> None:
    rows = [{"table": 'public."we""ird"', "dead": 3, "at": datetime(2026, 11, 28, tzinfo=UTC)}]
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert parsed == [{"table": 'public."we""ird"', "dead": "3", "at": "2026-11-28 00:00:00+00:00"}]
    assert json.loads(to_json(rows)) == [
        {"at": "2026-11-28T00:00:00+00:00", "dead": 3, "table": 'public."we""ird"'}
    ]
    assert to_csv([]) == ""


def test_human_bytes() -> None:
    assert [human_bytes(v) for v in (None, 512, 2048, 5 * 1024**3)] == ["—", "512 B", "2.0 kB", "5.0 GB"]
