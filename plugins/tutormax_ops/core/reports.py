"""Report and email rendering: Jinja2 templates from `include/templates/` (autoescaped), charts
drawn with matplotlib (Agg, no display), tables as CSV and JSON."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from tutormax_ops.core.paths import TEMPLATES_DIR


@cache
def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(("html", "htm", "xml", "j2")),
        undefined=StrictUndefined,  # a missing value is a bug, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["bytes"] = human_bytes
    environment.filters["num"] = lambda value, digits=1: "—" if value is None else f"{value:,.{digits}f}"
    return environment


def render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)


def human_bytes(value: float | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def line_chart_png(
    series: Mapping[str, Sequence[tuple[Any, float | None]]],
    *,
    title: str,
    ylabel: str,
    width_in: float = 8,
) -> bytes:
    """A PNG line chart: one line per series of (x, y) points; None values leave gaps."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(width_in, 3.2), dpi=100)
    try:
        for label, points in series.items():
            xs = [x for x, _ in points]
            ys = [float("nan") if y is None else y for _, y in points]
            axes.plot(xs, ys, marker="o", markersize=3, linewidth=1.5, label=label)
        distinct_x = {x for points in series.values() for x, _ in points}
        if len(distinct_x) == 1 and isinstance(next(iter(distinct_x)), datetime):
            # A first run alone would otherwise be drawn on a default axis years wide.
            only = next(iter(distinct_x))
            axes.set_xlim(only - timedelta(hours=12), only + timedelta(hours=12))
        axes.set_title(title)
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        if len(series) > 1:
            axes.legend(fontsize="small", loc="best")
        figure.autofmt_xdate()
        return figure_png(figure)
    finally:
        pyplot.close(figure)


def figure_png(figure: Any) -> bytes:
    """A laid-out matplotlib figure as PNG bytes (the caller closes it)."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def data_uri_png(png: bytes) -> str:
    """For the stored HTML report, which must stand alone; emails reference `cid:` attachments instead."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(payload: Any) -> str:
    return json.dumps(payload, default=_jsonable, indent=2, sort_keys=True)


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
