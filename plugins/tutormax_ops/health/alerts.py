"""Alert rules and their state machine, with hysteresis. Pure functions: no I/O.

States: `ok` → `pending` (breaching, fewer than `raise_after` hours in a row) → `firing`.
Each hourly step yields one transition:

- `raise`: the alert starts firing (an email goes out);
- `hold`: it keeps firing (breaching, inside the hysteresis band, or not measured this hour);
- `resolve`: it was firing and its value has been back past the clear level for `resolve_after`
  hours in a row (an email goes out);
- `none`: nothing a person needs to hear about.

The clear level sits `resolve_margin` of the threshold inside it: with the seed's cache alert at 70%
and a margin of 0.1, a firing alert clears only at 77% or more, so a value wobbling around 70% does
not raise and resolve every hour. A figure that could not be measured holds the state as it is.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tutormax_ops.core.config import Settings

Direction = Literal["below", "above"]
Transition = Literal["none", "raise", "hold", "resolve"]
NOTIFY_TRANSITIONS = frozenset({"raise", "resolve"})


@dataclass(frozen=True)
class AlertRule:
    """An alert fires when the metric is strictly past `threshold` in `direction` (the seed's wording)."""

    name: str  # also the snapshot's metric key
    label: str
    unit: str
    direction: Direction
    threshold: float

    @property
    def _past(self) -> Callable[[float, float], bool]:
        return operator.lt if self.direction == "below" else operator.gt

    def breached(self, value: float) -> bool:
        return self._past(value, self.threshold)

    def clear_level(self, margin: float) -> float:
        return self.threshold * (1 + margin) if self.direction == "below" else self.threshold * (1 - margin)

    def cleared(self, value: float, margin: float) -> bool:
        """Back on the good side of the clear level (inclusive)."""
        return not self._past(value, self.clear_level(margin))

    def describe(self, value: float | None) -> str:
        if value is None:
            return f"{self.label}: not measured this hour"
        words = "below" if self.direction == "below" else "above"
        state = f"{words} the alert level" if self.breached(value) else "within the alert level"
        return f"{self.label} {value:,.1f}{self.unit} is {state} of {self.threshold:g}{self.unit}"


@dataclass(frozen=True)
class AlertState:
    state: Literal["ok", "pending", "firing"] = "ok"
    breaches: int = 0  # breaching hours in a row
    clears: int = 0  # hours in a row at or past the clear level, while firing


def step(
    previous: AlertState,
    rule: AlertRule,
    value: float | None,
    *,
    raise_after: int,
    resolve_after: int,
    margin: float,
) -> tuple[AlertState, Transition]:
    """One hour of one alert: the new state and the transition that led to it."""
    if value is None:
        return previous, "hold" if previous.state == "firing" else "none"
    if rule.breached(value):
        breaches = previous.breaches + 1
        if previous.state == "firing":
            return AlertState("firing", breaches, 0), "hold"
        if breaches >= raise_after:
            return AlertState("firing", breaches, 0), "raise"
        return AlertState("pending", breaches, 0), "none"
    if previous.state != "firing":
        return AlertState(), "none"
    if not rule.cleared(value, margin):  # inside the hysteresis band: still firing
        return replace(previous, breaches=0, clears=0), "hold"
    clears = previous.clears + 1
    if clears >= resolve_after:
        return AlertState(), "resolve"
    return AlertState("firing", 0, clears), "hold"


def rules(settings: Settings) -> list[AlertRule]:
    """The seed's four Monitoring Alerts, DB connections against the maximum, and queue depth when one
    is configured."""
    alerts, health = settings.alerts, settings.health
    found = [
        AlertRule("cache_hit_rate", "Cache hit rate", "%", "below", alerts.cache_hit_rate_percent),
        AlertRule("api_p95_ms", "p95 API time", " ms", "above", alerts.p95_api_ms),
        AlertRule("slow_query_rate", "Slow query rate", "%", "above", alerts.slow_query_rate_percent),
        AlertRule("error_rate", "Error rate", "%", "above", alerts.error_rate_percent),
        AlertRule(
            "connections_pct", "DB connections (share of max)", "%", "above", health.connections_alert_percent
        ),
    ]
    if health.queue_depth_key:
        found.append(AlertRule("queue_depth", "Queue depth", " jobs", "above", health.queue_depth_alert))
    return found
