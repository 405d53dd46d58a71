"""Why a run regressed or missed its targets: its evidence (`loadtest.evidence`) against the
baseline runs' evidence, ranked into suspects, each with its figures and how sure the ranking is.

The baseline is the last `BASELINE_RUNS` comparable runs with evidence that were not flagged, at
least `MIN_BASELINE_RUNS` of them. A suspect is claimed only beyond the baseline runs' own spread, and beyond a floor
that a run-to-run wobble on a shared machine does not reach:
- **slower statement**: its mean per call at least `SLOWER_FACTOR` times the slowest baseline run's,
  over at least `MIN_CALLS` calls;
- **more statements per request** (an N+1): its calls per request at least `MORE_CALLS_FACTOR`
  times the baseline's most;
- **cache**: the hit rate `HIT_DROP_PP` points (or twice the baseline's spread) under its lowest, or
  the cache looked up half as often per request (bypassed); the statements that ran more because of
  it are its evidence, not suspects of their own;
- **service CPU**: CPU milliseconds per request `CPU_FACTOR` times the baseline's most;
- **time outside the handler**: an endpoint's client p95 minus its server p95 (X-Response-Time)
  grew by `GAP_MIN_MS`, `GAP_SHARE` of the client p95 and `GAP_NOISE` times the baseline's spread,
  while the server p95 stayed flat (rose by under `FLAT_SERVER_SHARE` of that growth);
- **waits** (lock waits first): backends waiting per request (Little's law: average waiting backends
  over requests per second) `WAIT_FACTOR` times the baseline's most, seen at least
  `MIN_WAIT_SAMPLES` times; slower statements that were the ones waiting are its evidence;
- **change since the baseline**: a migration, maintenance run or cache clear or warm this package
  recorded in between, a revision, an index or the PostgreSQL settings hash that differs. A change
  that matches a figure (a dropped index on the slower statement's table) is that suspect's evidence
  and raises its confidence.
Each figure suspect carries `explains_ms`, the milliseconds per request it accounts for; they rank by
it, weighted by confidence, then the changes. No suspect is a valid answer: "no evidence found".
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tutormax_ops.loadtest.model import Confidence, Suspect

if TYPE_CHECKING:
    from tutormax_ops.loadtest.model import Analysis

SLOWER = "slower statement"
MORE_CALLS = "more statements per request"
CACHE = "cache"
CPU = "service CPU"
OUTSIDE = "time outside the handler"
WAITS = "waits"
CHANGE = "change since the baseline"
KINDS = (SLOWER, MORE_CALLS, CACHE, CPU, OUTSIDE, WAITS, CHANGE)

BASELINE_RUNS = 5
MIN_BASELINE_RUNS = 2  # one run says nothing of the run-to-run spread a claim must clear
MIN_CALLS = 5  # a mean over fewer calls moves with one slow call
SLOWER_FACTOR = 2.0
MORE_CALLS_FACTOR = 1.5
MIN_CALLS_STEP = 0.1  # calls per request
MIN_MS = 0.3  # a figure suspect accounts for at least this many ms per request
HIT_DROP_PP = 5.0
LOOKUPS_FACTOR = 0.5
CPU_FACTOR = 1.5
GAP_MIN_MS = 10.0
GAP_SHARE = 0.25
GAP_NOISE = 3.0
FLAT_SERVER_SHARE = 0.25
WAIT_FACTOR = 3.0
MIN_WAIT_SAMPLES = 3  # backends seen waiting: one sighting is a coincidence of two requests
_WEIGHT = {"high": 1.0, "medium": 0.7, "low": 0.4}
_LOWER = {"high": "medium", "medium": "low", "low": "low"}
_HIGHER = {"high": "high", "medium": "high", "low": "medium"}
NO_BASELINE = f"fewer than {MIN_BASELINE_RUNS} baseline runs have evidence: their spread, which a cause must clear, is unknown"


def confidence(ratio: float) -> Confidence:
    """How far beyond its threshold a figure went: 3 times is high, 1.5 times medium."""
    return "high" if ratio >= 3 else "medium" if ratio >= 1.5 else "low"


def rank_suspects(
    current: Mapping[str, Any], baseline: Sequence[Mapping[str, Any]], changes: Sequence[Mapping[str, Any]]
) -> tuple[list[Suspect], str]:
    """This run's suspects, most likely first, and a note when there was nothing to compare with."""
    if len(baseline) < MIN_BASELINE_RUNS:
        return [], NO_BASELINE
    statements = _statement_suspects(current, baseline)
    waits = _wait_suspects(current, baseline)
    statements, waits = _fold_waiting_statements(statements, waits, current)
    cache = _cache_suspect(current, baseline, [s for s in statements if s.kind == MORE_CALLS])
    if cache is not None:
        statements = [s for s in statements if s.kind != MORE_CALLS]
    cpu = _cpu_suspect(current, baseline, explained_by_cache=cache is not None)
    outside = _outside_suspects(current, baseline)
    if cpu is not None and outside:  # a busy worker queues requests before its handler's clock starts
        queued = tuple(f"queued for the busy service: {s.summary}" for s in outside)
        cpu, outside = replace(cpu, evidence=(*cpu.evidence, *queued)), []
    figures = [*statements, *waits, *([cache] if cache else []), *([cpu] if cpu else []), *outside]
    figures, standalone = _attach_changes(figures, _changes(current, baseline[-1], changes))
    figures.sort(key=lambda s: -(s.explains_ms or 0) * _WEIGHT[s.confidence])
    return [*figures, *standalone], ""


def suspects_for(suspects: Sequence[Suspect], scope: str) -> list[Suspect]:
    """The suspects of one finding's scope: those of every endpoint, and that endpoint's own."""
    from tutormax_ops.loadtest.regression import AGGREGATE

    return [s for s in suspects if not s.scopes or scope == AGGREGATE or scope in s.scopes]


def likely_cause(analysis: Analysis) -> str | None:
    """The email's first line for a REGRESSION or TARGET BREACH: the top suspect of the first alarm
    (else of the first missed target's scope), or "no evidence found" and why."""
    if analysis.verdict not in ("regression", "fail"):
        return None
    failed = [check.scope for check in analysis.checks if check.status == "fail"]
    scope = analysis.alarms[0].scope if analysis.alarms else failed[0] if failed else ""
    found = suspects_for(analysis.suspects, scope)
    if not found:
        why = (
            analysis.explain_note
            or "no statement, cache, CPU, wait or timing figure moved beyond the baseline runs"
        )
        return f"no evidence found ({why})"
    top = found[0]
    return f"{top.summary} ({top.confidence} confidence)"


def _statement_suspects(current: Mapping[str, Any], baseline: Sequence[Mapping[str, Any]]) -> list[Suspect]:
    now = current.get("statements") or {}
    if not now.get("available") or "calls_per_request" not in now:
        return []
    before: dict[str, list[Mapping[str, Any]]] = {}
    for run in baseline:
        for row in (run.get("statements") or {}).get("top", []):
            if row["calls"] >= MIN_CALLS and "calls_per_request" in row:
                before.setdefault(row["id"], []).append(row)
    found = []
    for row in now["top"]:
        rows = before.get(row["id"])
        if row["calls"] < MIN_CALLS or not rows:
            continue
        mean_max = max(r["mean_ms"] for r in rows)
        mean_med = statistics.median(r["mean_ms"] for r in rows)
        per_call_max = max(r["calls_per_request"] for r in rows)
        per_call_med = statistics.median(r["calls_per_request"] for r in rows)
        figures = _statement_lines(row, rows)
        slower_by = (row["mean_ms"] - mean_med) * row["calls_per_request"]
        if row["mean_ms"] >= SLOWER_FACTOR * mean_max and slower_by >= MIN_MS:
            found.append(
                Suspect(
                    SLOWER,
                    f"statement slower per call: {_short(row['query'])}: {mean_med:.2f} → {row['mean_ms']:.2f} ms "
                    f"per call at {row['calls_per_request']:.2f} calls per request (+{slower_by:.1f} ms per request)",
                    figures,
                    confidence(row["mean_ms"] / (SLOWER_FACTOR * mean_max)),
                    slower_by,
                    statement_id=row["id"],
                )
            )
        more_by = (row["calls_per_request"] - per_call_med) * row["mean_ms"]
        if (
            row["calls_per_request"] >= MORE_CALLS_FACTOR * per_call_max
            and row["calls_per_request"] - per_call_max >= MIN_CALLS_STEP
            and more_by >= MIN_MS
        ):
            found.append(
                Suspect(
                    MORE_CALLS,
                    f"more statements per request: {_short(row['query'])}: {per_call_med:.2f} → "
                    f"{row['calls_per_request']:.2f} calls per request (+{more_by:.1f} ms per request)",
                    figures,
                    confidence(row["calls_per_request"] / (MORE_CALLS_FACTOR * per_call_max)),
                    more_by,
                    statement_id=row["id"],
                )
            )
    return found


def _statement_lines(row: Mapping[str, Any], before: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    def per_call(rows: Sequence[Mapping[str, Any]], key: str) -> str:
        return " / ".join(f"{r[key] / r['calls']:.1f}" for r in rows)

    return (
        f"statement: {row['query']}",
        f"mean per call (ms): baseline runs {_values((r['mean_ms'] for r in before), '.2f')}, this run {row['mean_ms']:.2f}",
        f"calls per request: baseline runs {_values((r['calls_per_request'] for r in before), '.2f')}, "
        f"this run {row['calls_per_request']:.2f}",
        f"shared blocks read per call: baseline runs {per_call(before, 'shared_blks_read')}, "
        f"this run {row['shared_blks_read'] / row['calls']:.1f}",
        f"rows per call: baseline runs {per_call(before, 'rows')}, this run {row['rows'] / row['calls']:.1f}",
    )


def _short(query: str, chars: int = 200) -> str:  # up to its FROM and WHERE, most often
    return f"`{query[:chars]}{'…' if len(query) > chars else ''}`"


def _wait_suspects(current: Mapping[str, Any], baseline: Sequence[Mapping[str, Any]]) -> list[Suspect]:
    now = (current.get("waits") or {}).get("ms_per_request") or {}
    found = []
    for wait_type, value in now.items():
        before = [
            ((run.get("waits") or {}).get("ms_per_request") or {}).get(wait_type, 0.0) for run in baseline
        ]
        threshold = max(MIN_MS, WAIT_FACTOR * max(before))
        waits = current["waits"]
        events = {e: n for e, n in waits["by_event"].items() if e.startswith(f"{wait_type}:")}
        if value < threshold or sum(events.values()) < MIN_WAIT_SAMPLES:
            continue
        label = "lock waits" if wait_type == "Lock" else f"{wait_type} waits"
        found.append(
            Suspect(
                WAITS,
                f"{label} in the service database: {statistics.median(before):.1f} → {value:.1f} ms per request "
                f"waiting ({_events(events)} backend samples)",
                (
                    f"{waits['samples']} samples of pg_stat_activity, one every {waits['interval_s']:g} s",
                    f"ms per request waiting on {wait_type}: baseline runs "
                    f"{' / '.join(f'{b:.1f}' for b in before)}, this run {value:.1f}",
                ),
                confidence(value / threshold),
                value - statistics.median(before),
            )
        )
    return found


def _fold_waiting_statements(
    statements: list[Suspect], waits: list[Suspect], current: Mapping[str, Any]
) -> tuple[list[Suspect], list[Suspect]]:
    """A statement that got slower because it waited for a lock is the lock's evidence."""
    locks = [s for s in waits if s.summary.startswith("lock waits")]
    if not locks:
        return statements, waits
    waiting = set((current.get("waits") or {}).get("lock_by_query") or {})
    keys = {
        row["id"]: {str(row["queryid"]), f"id:{row['id']}"} for row in current["statements"].get("top", [])
    }
    waited = [s for s in statements if keys.get(s.statement_id or "", set()) & waiting]
    lock = locks[0]
    lock = replace(lock, evidence=(*lock.evidence, *(f"waited, and slower: {s.summary}" for s in waited)))
    others = [s for s in waits if s is not locks[0]]
    return [s for s in statements if s not in waited], [lock, *others]


def _cache_suspect(
    current: Mapping[str, Any], baseline: Sequence[Mapping[str, Any]], more_calls: Sequence[Suspect]
) -> Suspect | None:
    now = current.get("cache") or {}
    before = [run.get("cache") or {} for run in baseline]
    rates = [b["hit_rate"] for b in before if b.get("hit_rate") is not None]
    lookups = [b["lookups_per_request"] for b in before if b.get("lookups_per_request")]
    ratios = []
    if now.get("hit_rate") is not None and rates:
        threshold = max(HIT_DROP_PP, 2 * (max(rates) - min(rates)))
        ratios.append((min(rates) - now["hit_rate"]) / threshold)
    if now.get("lookups_per_request") is not None and lookups:
        ratios.append(LOOKUPS_FACTOR * min(lookups) / max(now["lookups_per_request"], 1e-9))
    if not ratios or max(ratios) < 1:
        return None
    db_before = [(run.get("statements") or {}).get("ms_per_request") for run in baseline]
    db_before = [value for value in db_before if value is not None]
    db_now = (current.get("statements") or {}).get("ms_per_request")
    db_more = db_now - statistics.median(db_before) if db_now is not None and db_before else None
    explains = max(db_more or 0.0, sum(s.explains_ms or 0.0 for s in more_calls)) or None
    rate = (
        f"{statistics.median(rates):.1f}% → {now['hit_rate']:.1f}%"
        if rates and now.get("hit_rate") is not None
        else "—"
    )
    return Suspect(
        CACHE,
        f"lower cache hit rate: {rate}, "
        f"{statistics.median(lookups) if lookups else 0:.2f} → {now.get('lookups_per_request') or 0:.2f} lookups "
        f"per request" + (f", database time +{db_more:.1f} ms per request" if db_more else ""),
        (
            f"hit rate (%): baseline runs {' / '.join(f'{r:.1f}' for r in rates)}, this run {now.get('hit_rate')}",
            f"cache lookups per request: baseline runs {' / '.join(f'{v:.2f}' for v in lookups)}, "
            f"this run {now.get('lookups_per_request')}",
            f"evictions: baseline runs {' / '.join(str(b.get('evictions')) for b in before)}, this run {now.get('evictions')}",
            *(f"ran more as a result: {s.summary}" for s in more_calls),
        ),
        confidence(max(ratios)),
        explains,
    )


def _cpu_suspect(
    current: Mapping[str, Any], baseline: Sequence[Mapping[str, Any]], *, explained_by_cache: bool
) -> Suspect | None:
    now = current.get("service_cpu_ms_per_request")
    before = [run["service_cpu_ms_per_request"] for run in baseline if run.get("service_cpu_ms_per_request")]
    if now is None or not before:
        return None
    median = statistics.median(before)
    threshold = max(CPU_FACTOR * max(before), max(before) + MIN_MS)
    if now < threshold:
        return None
    ratio = (now - median) / (threshold - median)
    evidence = (
        f"CPU ms per request: baseline runs {' / '.join(f'{b:.1f}' for b in before)}, this run {now:.1f}",
    )
    level = confidence(ratio)
    if explained_by_cache:  # answers built again instead of read from the cache cost CPU too
        evidence += ("consistent with the cache's misses: the service builds what it used to read",)
        level = _LOWER[level]
    return Suspect(
        CPU,
        f"more CPU per request in the service: {median:.1f} → {now:.1f} ms",
        evidence,
        level,
        now - median,
    )


def _outside_suspects(current: Mapping[str, Any], baseline: Sequence[Mapping[str, Any]]) -> list[Suspect]:
    found = []
    for name, now in (current.get("endpoints") or {}).items():
        before = [run["endpoints"][name] for run in baseline if name in (run.get("endpoints") or {})]
        if not before:
            continue
        gaps = [b["client_p95_ms"] - b["server_p95_ms"] for b in before]
        servers = [b["server_p95_ms"] for b in before]
        gap = now["client_p95_ms"] - now["server_p95_ms"]
        grew = gap - statistics.median(gaps)
        threshold = max(
            GAP_MIN_MS, GAP_SHARE * now["client_p95_ms"], GAP_NOISE * (max(gaps) - statistics.median(gaps))
        )
        server_rise = now["server_p95_ms"] - statistics.median(servers)
        if grew < threshold or server_rise >= FLAT_SERVER_SHARE * grew:
            continue
        found.append(
            Suspect(
                OUTSIDE,
                f"time outside the handler on {name}: client p95 − server p95 {statistics.median(gaps):.0f} → "
                f"{gap:.0f} ms while the server's own p95 stayed {statistics.median(servers):.0f} → "
                f"{now['server_p95_ms']:.0f} ms (the network, a proxy, the generator or the accept queue)",
                (
                    f"client p95 (ms): baseline runs {' / '.join(str(b['client_p95_ms']) for b in before)}, "
                    f"this run {now['client_p95_ms']}",
                    f"server p95, X-Response-Time (ms): baseline runs {' / '.join(f'{s:.0f}' for s in servers)}, "
                    f"this run {now['server_p95_ms']:.0f}",
                ),
                confidence(grew / threshold),
                grew,
                scopes=(name,),
            )
        )
    return found


def _changes(
    current: Mapping[str, Any], newest: Mapping[str, Any], recorded: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """(table or "", description) of each change between the newest baseline run and this run."""
    found = []
    for event in recorded:
        summary = event.get("summary") or {}
        if event["kind"] == "migration":
            what = f"migration {summary.get('from')} → {summary.get('target')} ({event['status']})"
        else:
            what = f"{event['kind']} run {event['run_id']} ({event['status']})"
        found.append(("", f"{what} at {event['started_at']:%Y-%m-%d %H:%M} UTC"))
    state, before = current.get("state") or {}, newest.get("state") or {}
    if state.get("revisions") != before.get("revisions") and before.get("revisions") is not None:
        found.append(("", f"schema revision {before.get('revisions')} → {state.get('revisions')}"))
    if state.get("indexes") is not None and before.get("indexes") is not None:
        for index in sorted(set(before["indexes"]) - set(state["indexes"])):
            found.append((index.split(".")[0], f"index {index} dropped since the baseline"))
        for index in sorted(set(state["indexes"]) - set(before["indexes"])):
            found.append((index.split(".")[0], f"index {index} added since the baseline"))
    if state.get("pg_settings_hash") != before.get("pg_settings_hash") and before.get("pg_settings_hash"):
        found.append(("", "PostgreSQL settings changed (their hash differs)"))
    return found


def _attach_changes(
    figures: list[Suspect], changes: Sequence[tuple[str, str]]
) -> tuple[list[Suspect], list[Suspect]]:
    """A change on a slower statement's table (or a cache event with a cache suspect) becomes that
    suspect's evidence and raises its confidence; any other change is a suspect of its own."""
    standalone = []
    for table, what in changes:
        if not any(_matches(s, table, what) for s in figures):
            standalone.append(Suspect(CHANGE, what, (what,), "low"))
            continue
        figures = [
            replace(
                s,
                summary=f"{s.summary}; {what}",
                evidence=(*s.evidence, what),
                confidence=_HIGHER[s.confidence],
            )
            if _matches(s, table, what)
            else s
            for s in figures
        ]
    return figures, standalone


def _matches(suspect: Suspect, table: str, what: str) -> bool:
    if suspect.kind in (SLOWER, MORE_CALLS) and table:
        return re.search(rf"\b{re.escape(table)}\b", suspect.evidence[0]) is not None
    return suspect.kind == CACHE and what.startswith("cache")


def _values(values: Iterable[float], spec: str) -> str:
    """Baseline runs' figures as '1.2 / 1.4 / 1.3'."""
    return " / ".join(format(value, spec) for value in values)


def _events(events: Mapping[str, int]) -> str:
    """{"Lock:relation": 12} as 'relation 12'."""
    return ", ".join(f"{event.split(':', 1)[1]} {count}" for event, count in events.items())
