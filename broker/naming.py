"""The names of a query's output columns, as DuckDB gives them.

An output column the query does not name (``count(*)``, ``sum(l_quantity)``)
is named by DuckDB after its expression: ``count_star()``,
``sum(l_quantity)``. The policy rewrite qualifies the query with sqlglot,
which would name it ``_col_<i>`` instead; so before that, each such column of
the outermost SELECT (the leftmost of a set operation, as DuckDB takes
names from it) gets an alias: DuckDB's own name for the expression, from its
parser (``duckdb.SQLExpression``), which only parses: nothing is bound or
evaluated, so no constant is folded at a caller's expense.

The expression is read from the query as the caller wrote it, not from the
validated tree, whose unquoted identifiers are lower-cased: DuckDB keeps
``SUM(L_QUANTITY)`` as ``sum(L_QUANTITY)``.
"""

from __future__ import annotations

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError


def name_outputs(tree: exp.Query, sql: str) -> None:
    """Aliases each unnamed computed output column of ``tree`` (the validated
    query of ``sql``) with DuckDB's name for it; leaves one DuckDB cannot
    name, and every column of a SELECT with a ``*``, as they are.

    >>> tree = sqlglot.parse_one("SELECT source, count(*) FROM t GROUP BY source")
    >>> name_outputs(tree, "SELECT source, COUNT(*) FROM t GROUP BY source")
    >>> tree.sql(dialect="duckdb")
    'SELECT source, COUNT(*) AS "count_star()" FROM t GROUP BY source'
    """
    select = _leftmost(tree)
    if select is None or not any(_unnamed(p) for p in select.expressions):
        return
    if any(isinstance(p, exp.Star) or _is_star_column(p) for p in select.expressions):
        return  # positions no longer match the output columns
    try:
        written = _leftmost(sqlglot.parse_one(sql, read="duckdb"))
    except SqlglotError:
        return
    if written is None or len(written.expressions) != len(select.expressions):
        return
    for projection, original in zip(select.expressions, written.expressions, strict=True):
        if not _unnamed(projection):
            continue
        name = duckdb_name(original)
        if name:
            # An Alias node, not alias_(): that would name a subquery's table instead
            alias = exp.to_identifier(name, quoted=True)
            projection.replace(exp.Alias(this=projection.copy(), alias=alias))


def duckdb_name(expression: exp.Expr) -> str:
    """DuckDB's name of an unnamed output column computing ``expression``
    ("" when DuckDB's parser does not read it).

    >>> duckdb_name(sqlglot.parse_one("SUM(l_quantity)"))
    'sum(l_quantity)'
    """
    try:
        name: str = duckdb.SQLExpression(expression.sql(dialect="duckdb")).get_name()
    except duckdb.Error:
        return ""
    return name


def _leftmost(tree: exp.Expr) -> exp.Select | None:
    while isinstance(tree, exp.SetOperation | exp.Subquery):
        tree = tree.this
    return tree if isinstance(tree, exp.Select) else None


def _unnamed(projection: exp.Expr) -> bool:
    return not isinstance(projection, exp.Alias | exp.Column | exp.Star)


def _is_star_column(projection: exp.Expr) -> bool:
    return isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
