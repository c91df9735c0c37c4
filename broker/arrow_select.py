"""A plain SELECT over one Arrow table, evaluated by Arrow instead of DuckDB.

Most merges of point lookups and history parts, and most secure views, are
``SELECT columns FROM t WHERE column = 'X' [AND ...] [LIMIT n]`` over a
handful of rows. A DuckDB statement for that costs about 2 ms (binding,
planning, converting in and out); Arrow's filter and projection about 50
microseconds. :func:`evaluate` answers exactly that class of query and
returns None for anything else, which DuckDB then runs as before:

- FROM one table (no join, subquery, CTE, DISTINCT, GROUP BY, HAVING,
  ORDER BY, window or set operation);
- projection: that table's columns, each under its own name or an alias;
- WHERE: AND, OR, NOT, parentheses, a BOOLEAN column, ``IS [NOT] NULL``, and ``=``, ``<>``,
  ``<``, ``<=``, ``>``, ``>=`` or ``IN`` between a column and literals of
  the column's own kind only: text with a string, BIGINT with an integer,
  DATE with ``DATE 'YYYY-MM-DD'``, BOOLEAN with TRUE or FALSE. Where DuckDB
  would cast (a number against text, a DOUBLE with its NaN ordering) or
  fail, DuckDB decides;
- LIMIT of a non-negative integer: without ORDER BY any such rows are a
  valid answer, as they are from DuckDB.

SQL's three-valued logic is Arrow's Kleene logic (``and_kleene``,
``or_kleene``; ``invert`` keeps NULL), and a filter keeps the rows whose
predicate is true, as WHERE does. The answer's schema is the one DuckDB
gives (the input's types, no field metadata). ``tests/test_arrow_select.py``
checks both against DuckDB on generated tables and predicates.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

#: The only clauses a query evaluated here has.
_CLAUSES = frozenset({"expressions", "from_", "where", "limit"})
#: The catalog's column types, which DuckDB answers unchanged.
_PASSED_THROUGH = frozenset({pa.string(), pa.int64(), pa.float64(), pa.date32(), pa.bool_()})
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: DuckDB's BIGINT range: an integer literal outside it is another type.
_INT64 = (-(2**63), 2**63 - 1)

_COMPARE: dict[type[exp.Expr], Callable[[Any, Any], Any]] = {
    exp.EQ: pc.equal,
    exp.NEQ: pc.not_equal,
    exp.LT: pc.less,
    exp.LTE: pc.less_equal,
    exp.GT: pc.greater,
    exp.GTE: pc.greater_equal,
}
#: ``literal OP column`` is ``column MIRROR[OP] literal``.
_MIRROR: dict[type[exp.Expr], Callable[[Any, Any], Any]] = {
    exp.EQ: pc.equal,
    exp.NEQ: pc.not_equal,
    exp.LT: pc.greater,
    exp.LTE: pc.greater_equal,
    exp.GT: pc.less,
    exp.GTE: pc.less_equal,
}


class _Outside(Exception):
    """The query is not of the class evaluated here: DuckDB runs it."""


def evaluate(query: exp.Expr, tables: Mapping[str, pa.Table]) -> pa.Table | None:
    """``query``'s answer over ``tables`` (by registered name), or None when
    the query is outside the class above (or names a table not given, or
    nests deeper than this evaluator's recursion goes)."""
    try:
        return _evaluate(query, tables)
    except (_Outside, RecursionError):  # a long OR chain nests past Python's stack
        return None


def _evaluate(query: exp.Expr, tables: Mapping[str, pa.Table]) -> pa.Table:
    if not isinstance(query, exp.Select) or any(
        value for arg, value in query.args.items() if arg not in _CLAUSES
    ):
        raise _Outside
    from_ = query.args.get("from_")
    source = from_.this if from_ is not None else None
    if (
        not isinstance(source, exp.Table)
        or not isinstance(source.this, exp.Identifier)
        or source.args.get("db")
        or source.args.get("catalog")
        or source.args.get("joins")
        or (source.args.get("alias") is not None and source.args["alias"].args.get("columns"))
    ):
        raise _Outside
    table = tables.get(source.name)
    if table is None or len(set(table.column_names)) != table.num_columns:
        raise _Outside
    scope = _Scope(table, source.alias_or_name)
    names, columns = [], []
    for projection in query.expressions:
        column = projection.this if isinstance(projection, exp.Alias) else projection
        names.append(projection.alias_or_name)
        columns.append(scope.column(column))
    where = query.args.get("where")
    if where is not None:
        table = table.filter(_truth(where.this, scope))
    limit = query.args.get("limit")
    if limit is not None:
        table = table.slice(0, _count(limit))
    picked = [table.column(c) for c in columns]
    if not all(c.type in _PASSED_THROUGH for c in picked):
        raise _Outside  # DuckDB would give another type (a large string as a string)
    schema = pa.schema([pa.field(n, c.type) for n, c in zip(names, picked, strict=True)])
    return pa.Table.from_arrays(picked, schema=schema)


class _Scope:
    """The one table in FROM: its columns by name, under its alias."""

    def __init__(self, table: pa.Table, alias: str) -> None:
        self.table, self.alias = table, alias
        self.types = {f.name: f.type for f in table.schema}

    def column(self, node: exp.Expr) -> str:
        if (
            not isinstance(node, exp.Column)
            or not isinstance(node.this, exp.Identifier)
            or (node.table and node.table != self.alias)
            or node.args.get("db")
            or node.args.get("catalog")
            or node.name not in self.types
        ):
            raise _Outside
        return node.name


def _truth(node: exp.Expr, scope: _Scope) -> pa.ChunkedArray | pa.Array:
    """The boolean array of a predicate, NULL where SQL's answer is unknown."""
    if isinstance(node, exp.Paren):
        return _truth(node.this, scope)
    if isinstance(node, exp.And):
        return pc.and_kleene(_truth(node.this, scope), _truth(node.expression, scope))
    if isinstance(node, exp.Or):
        return pc.or_kleene(_truth(node.this, scope), _truth(node.expression, scope))
    if isinstance(node, exp.Not):
        return pc.invert(_truth(node.this, scope))
    return _condition(node, scope)


def _condition(node: exp.Expr, scope: _Scope) -> pa.ChunkedArray | pa.Array:
    """A predicate's array that reads one column."""
    if isinstance(node, exp.Column) and pa.types.is_boolean(scope.types.get(node.name, pa.null())):
        return scope.table.column(scope.column(node))
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        return pc.is_null(scope.table.column(scope.column(node.this)))
    if isinstance(node, exp.In):
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            raise _Outside
        name = scope.column(node.this)
        values = [_literal(v, scope.types[name]) for v in node.expressions]
        column = scope.table.column(name)
        found = pc.is_in(column, value_set=pa.array(values, scope.types[name]))
        # x IN (...) is NULL, not false, for a NULL x (then NOT keeps it out).
        return pc.if_else(pc.is_null(column), pa.scalar(None, pa.bool_()), found)
    compare = _COMPARE.get(type(node))
    if compare is not None:
        left, right = node.this, node.expression
        if isinstance(left, exp.Column):
            name, literal = scope.column(left), right
        elif isinstance(right, exp.Column):
            name, literal, compare = scope.column(right), left, _MIRROR[type(node)]
        else:
            raise _Outside
        kind = scope.types[name]
        value = pa.scalar(_literal(literal, kind), kind)
        return compare(scope.table.column(name), value)
    raise _Outside


def _literal(node: exp.Expr, kind: pa.DataType) -> Any:
    """The value of a literal of the column's own kind (never None)."""
    if pa.types.is_string(kind):
        if isinstance(node, exp.Literal) and node.is_string:
            return node.this
    elif pa.types.is_int64(kind):
        negative = isinstance(node, exp.Neg)
        number = node.this if negative else node
        if isinstance(number, exp.Literal) and not number.is_string and number.this.isdigit():
            value = -int(number.this) if negative else int(number.this)
            if _INT64[0] <= value <= _INT64[1]:
                return value
    elif pa.types.is_date32(kind):
        if (
            isinstance(node, exp.Cast)
            and node.to.this == exp.DataType.Type.DATE
            and isinstance(node.this, exp.Literal)
            and node.this.is_string
            and _ISO_DATE.fullmatch(node.this.this)
        ):
            try:
                return dt.date.fromisoformat(node.this.this)
            except ValueError:
                raise _Outside from None  # DuckDB's error to give
    elif pa.types.is_boolean(kind) and isinstance(node, exp.Boolean):
        return bool(node.this)
    raise _Outside


def _count(limit: exp.Expr) -> int:
    number = limit.expression if isinstance(limit, exp.Limit) else None
    if (
        isinstance(number, exp.Literal)
        and not number.is_string
        and number.this.isdigit()
        and not limit.args.get("offset")
    ):
        return int(number.this)
    raise _Outside
