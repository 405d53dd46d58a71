"""Index suggestions in the manner of PgHero, for tables read mostly by sequential scans.

1. Find tables with many sequential scans and enough rows for an index to matter.
2. Parse the top pg_stat_statements queries (by total time) with pglast, the libpg_query binding.
   Keep single-table SELECT, UPDATE and DELETE statements and, from their WHERE clause, the AND-ed
   equality (`=`, `IN`) and range (`<`, `<=`, `>`, `>=`, `BETWEEN`) comparisons of a column with a
   value that does not depend on the row, plus plain-column ORDER BY.
3. Choose columns: equality columns first, most selective first (fewest rows per value from
   pg_stats n_distinct, columns taken as independent), until about `target_rows` rows are left; then,
   if still more, the ORDER BY columns (which lets the index also return rows in order) or else one
   range column (a btree can only range-scan on the column after its equality prefix).
4. Skip a suggestion that an existing valid, non-partial btree index already covers as a prefix.

Each suggestion carries its `CREATE INDEX CONCURRENTLY` statement, built with psycopg.sql.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType, SortByDir
from pglast.parser import ParseError
from psycopg import sql

from tutormax_ops.collectors.postgres._run import fetch_all
from tutormax_ops.collectors.postgres.queries import (
    StatementDelta,
    StatementsSnapshot,
    statements_snapshot,
    top_queries,
)

_Columns = tuple[tuple[str, bool], ...]  # index columns as (name, descending)
_RANGE_OPERATORS = frozenset({"<", "<=", ">", ">="})
_EQUALITY_KINDS = frozenset({A_Expr_Kind.AEXPR_OP, A_Expr_Kind.AEXPR_IN})
_RANGE_KINDS = frozenset({A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_BETWEEN_SYM})


@dataclass(frozen=True)
class QueryPredicates:
    """What an index could serve in one single-table statement."""

    schema: str | None
    table: str
    equality: tuple[str, ...]
    ranges: tuple[str, ...]
    order_by: _Columns


@dataclass(frozen=True)
class IndexSuggestion:
    """A proposed index and the statements that would use it.

    `estimated_rows` is how many rows per call its equality columns leave to read (None when pg_stats
    is not visible to this role: the columns then keep the query's order, unranked).
    """

    schema: str
    table: str
    columns: tuple[str, ...]
    sql: str
    table_rows: float
    estimated_rows: float | None
    calls: int
    total_ms: float
    queries: tuple[str, ...]


@dataclass(frozen=True)
class IndexSuggestions:
    """The suggestions, or why there can be none (pg_stat_statements unavailable)."""

    available: bool
    reason: str | None
    fix: str | None
    suggestions: tuple[IndexSuggestion, ...] = ()


@dataclass(frozen=True)
class _SeqScanTable:
    relid: int
    schema: str
    table: str
    seq_scans: int
    seq_tuples_read: int
    idx_scans: int
    table_rows: float


@dataclass(frozen=True)
class _ColumnStat:
    relid: int
    column: str
    distinct_values: float | None


@dataclass(frozen=True)
class _IndexColumns:
    relid: int
    columns: list[str | None]


def index_suggestions(
    conn: psycopg.Connection,
    *,
    statements: StatementsSnapshot | None = None,
    min_seq_scans: int = 50,
    min_table_rows: int = 10_000,
    table_limit: int = 50,
    statement_limit: int = 100,
    target_rows: float = 100.0,
    max_columns: int = 3,
) -> IndexSuggestions:
    """Suggestions for the seq-scan-heavy tables, from the statements that cost most time overall.

    `statements` defaults to a fresh snapshot (cumulative since the counters started).
    """
    snapshot = statements or statements_snapshot(conn)
    if not snapshot.available:
        return IndexSuggestions(False, snapshot.reason, snapshot.fix)
    params = {"min_seq_scans": min_seq_scans, "min_table_rows": min_table_rows, "limit": table_limit}
    tables = fetch_all(conn, "seq_scan_tables", _SeqScanTable, params)
    relids = [table.relid for table in tables]
    distinct: dict[int, dict[str, float | None]] = defaultdict(dict)
    for stat in fetch_all(conn, "column_stats", _ColumnStat, {"relids": relids}):
        distinct[stat.relid][stat.column] = stat.distinct_values
    existing: dict[int, list[list[str | None]]] = defaultdict(list)
    for index in fetch_all(conn, "btree_index_columns", _IndexColumns, {"relids": relids}):
        existing[index.relid].append(index.columns)

    # Statements that would use the same index are grouped into one suggestion.
    groups: dict[tuple[int, _Columns], list[StatementDelta]] = defaultdict(list)
    estimates: dict[tuple[int, _Columns], float | None] = {}
    by_relid = {table.relid: table for table in tables}
    for delta in top_queries(None, snapshot, by="total", limit=statement_limit):
        predicates = query_predicates(delta.query)
        table = _matching_table(predicates, tables) if predicates else None
        if predicates is None or table is None:
            continue
        columns, estimated_rows = _choose_columns(
            predicates, distinct[table.relid], table.table_rows, target_rows, max_columns
        )
        equality_count = sum(1 for name, _ in columns if name in predicates.equality)
        if not columns or _covered([name for name, _ in columns], equality_count, existing[table.relid]):
            continue
        groups[(table.relid, columns)].append(delta)
        estimates[(table.relid, columns)] = estimated_rows

    suggestions = [
        IndexSuggestion(
            schema=by_relid[relid].schema,
            table=by_relid[relid].table,
            columns=tuple(name for name, _ in columns),
            sql=_create_index(conn, by_relid[relid].schema, by_relid[relid].table, columns),
            table_rows=by_relid[relid].table_rows,
            estimated_rows=estimates[(relid, columns)],
            calls=sum(delta.calls for delta in deltas),
            total_ms=sum(delta.total_ms for delta in deltas),
            queries=tuple(delta.query for delta in deltas),
        )
        for (relid, columns), deltas in groups.items()
    ]
    suggestions.sort(key=lambda suggestion: suggestion.total_ms, reverse=True)
    return IndexSuggestions(True, None, None, tuple(suggestions))


def query_predicates(query: str) -> QueryPredicates | None:
    """The indexable shape of one single-table statement, or None (joins, subqueries, parse errors)."""
    try:
        statements = parse_sql(query)
    except ParseError:
        return None  # e.g. a query text pg_stat_statements cut at track_activity_query_size
    if len(statements) != 1:
        return None
    statement = statements[0].stmt
    sort: tuple[Any, ...] = ()
    if isinstance(statement, ast.SelectStmt):
        if not statement.fromClause or len(statement.fromClause) != 1:
            return None
        relation, sort = statement.fromClause[0], statement.sortClause or ()
    elif (isinstance(statement, ast.UpdateStmt) and not statement.fromClause) or (
        isinstance(statement, ast.DeleteStmt) and not statement.usingClause
    ):
        relation = statement.relation
    else:
        return None
    if not isinstance(relation, ast.RangeVar):
        return None
    names = {relation.relname, relation.alias.aliasname if relation.alias else relation.relname}
    equality: list[str] = []
    ranges: list[str] = []
    for condition in _conjuncts(statement.whereClause):
        _classify(condition, names, equality, ranges)
    order_by = tuple(
        (column, item.sortby_dir == SortByDir.SORTBY_DESC)
        for item in sort
        if (column := _column_name(item.node, names)) is not None
    )
    if len(order_by) != len(sort):
        order_by = ()  # an expression in ORDER BY: no index column list can return that order
    return QueryPredicates(
        relation.schemaname, relation.relname, _unique(equality), _unique(ranges), order_by
    )


def _conjuncts(where: Any) -> Iterable[Any]:
    """The AND-ed terms of a WHERE clause, nested ANDs flattened."""
    if where is None:
        return
    if isinstance(where, ast.BoolExpr) and where.boolop == BoolExprType.AND_EXPR:
        for argument in where.args:
            yield from _conjuncts(argument)
    else:
        yield where


def _classify(condition: Any, names: set[str], equality: list[str], ranges: list[str]) -> None:
    """Add the column that `condition` compares with a row-independent value, by kind of comparison."""
    if not isinstance(condition, ast.A_Expr):
        return  # OR, NOT, IS NULL, function calls...: not used by the suggestion
    operator = condition.name[-1].sval if condition.name else None
    sides = [condition.lexpr, condition.rexpr]
    for column_side, value_side in (sides, sides[::-1]):
        column = _column_name(column_side, names)
        if column is None or _depends_on_row(value_side):
            continue
        if operator == "=" and condition.kind in _EQUALITY_KINDS:  # `=` and `IN (...)`
            equality.append(column)
        elif _is_range(condition, operator, column_side):
            ranges.append(column)
        return


def _is_range(condition: ast.A_Expr, operator: str | None, column_side: Any) -> bool:
    """`col < value` (and <=, >, >=, either way round) or `col BETWEEN a AND b`."""
    if condition.kind == A_Expr_Kind.AEXPR_OP:
        return operator in _RANGE_OPERATORS
    return condition.kind in _RANGE_KINDS and column_side is condition.lexpr


def _column_name(node: Any, names: set[str]) -> str | None:
    """`column` or `table.column` / `alias.column` of the statement's one table, else None."""
    if not isinstance(node, ast.ColumnRef):
        return None
    fields = node.fields
    if not all(isinstance(field, ast.String) for field in fields):
        return None  # `*`
    if len(fields) == 1 or (len(fields) == 2 and fields[0].sval in names):
        return fields[-1].sval
    return None


def _depends_on_row(node: Any) -> bool:
    """Whether an expression mentions a column or a subquery (a parameter or constant does not)."""
    if isinstance(node, tuple):
        return any(_depends_on_row(item) for item in node)
    if isinstance(node, ast.ColumnRef | ast.SubLink):
        return True
    if isinstance(node, ast.Node):
        return any(_depends_on_row(getattr(node, member)) for member in node)
    return False


def _unique(columns: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(columns))


def _matching_table(predicates: QueryPredicates, tables: Sequence[_SeqScanTable]) -> _SeqScanTable | None:
    """The candidate table a statement names; an unqualified name must match exactly one schema."""
    matches = [
        table
        for table in tables
        if table.table == predicates.table and predicates.schema in (None, table.schema)
    ]
    return matches[0] if len(matches) == 1 else None


def _choose_columns(
    predicates: QueryPredicates,
    distinct: dict[str, float | None],
    table_rows: float,
    target_rows: float,
    max_columns: int,
) -> tuple[_Columns, float | None]:
    """Index columns and the rows per call its equality columns leave (None: no statistics)."""
    ranked = [column for column in predicates.equality if column in distinct]
    if all(distinct[column] for column in ranked):
        # Most selective first: the most distinct values means the fewest rows per value.
        ranked.sort(key=lambda column: distinct[column] or 0, reverse=True)
        rows: float | None = table_rows
    else:
        rows = None  # no statistics to rank by (never analyzed, or hidden from this role)
    columns: list[tuple[str, bool]] = []
    for column in ranked[:max_columns]:
        if rows is not None and rows <= target_rows:
            break
        columns.append((column, False))
        if rows is not None:
            rows /= max(distinct[column] or 1.0, 1.0)
    if rows is not None and rows <= target_rows:
        return tuple(columns), rows
    chosen = {name for name, _ in columns}
    order_by = [(column, desc) for column, desc in predicates.order_by if column in distinct]
    ranges = [column for column in predicates.ranges if column in distinct and column not in chosen]
    if order_by and (not ranges or order_by[0][0] in ranges):
        columns += [(column, desc) for column, desc in order_by if column not in chosen]
    elif ranges:
        columns.append((ranges[0], False))
    return tuple(columns[:max_columns]), rows


def _covered(columns: list[str], equality_count: int, indexes: Iterable[list[str | None]]) -> bool:
    """Whether an existing index starts with these columns: the equality ones in any order (they are
    all fixed by the query), the rest in order."""
    for index in indexes:
        if len(index) < len(columns):
            continue
        same_equality = set(index[:equality_count]) == set(columns[:equality_count])
        if same_equality and index[equality_count : len(columns)] == columns[equality_count:]:
            return True
    return False


def _create_index(conn: psycopg.Connection, schema: str, table: str, columns: _Columns) -> str:
    """The CREATE INDEX CONCURRENTLY statement, identifiers quoted by psycopg.sql."""
    keys = sql.SQL(", ").join(
        sql.SQL("{} DESC").format(sql.Identifier(name)) if descending else sql.Identifier(name)
        for name, descending in columns
    )
    statement = sql.SQL("CREATE INDEX CONCURRENTLY ON {table} ({keys})").format(
        table=sql.Identifier(schema, table), keys=keys
    )
    return statement.as_string(conn)
