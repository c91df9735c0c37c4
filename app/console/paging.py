"""One page of a query's answer, asked of the broker again for each page
(the console keeps no result between requests): the query's own LIMIT and
OFFSET narrowed to the page, one row more than the page to tell whether a
next page exists."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

#: Rows on one page of the workbench.
PAGE_ROWS = 50


def _int(node: exp.Expression | None) -> int | None:
    value = node.expression if isinstance(node, (exp.Limit, exp.Offset)) else None
    if isinstance(value, exp.Literal) and value.is_int:
        return int(value.this)
    return None


def page_sql(sql: str, page: int, rows: int = PAGE_ROWS) -> str | None:
    """``sql`` narrowed to page ``page`` (from 0) of ``rows`` rows, plus one.

    None when the page lies past the query's own LIMIT; ``sql`` unchanged when
    it is not one query sqlglot reads (the broker then says what is wrong).

    >>> page_sql("SELECT a FROM t ORDER BY a", 2, 10)
    'SELECT a FROM t ORDER BY a LIMIT 11 OFFSET 20'
    >>> page_sql("SELECT a FROM t LIMIT 15", 1, 10)
    'SELECT a FROM t LIMIT 5 OFFSET 10'
    >>> page_sql("SELECT a FROM t LIMIT 10", 1, 10) is None
    True
    """
    try:
        trees = sqlglot.parse(sql, read="duckdb")
    except ParseError:
        return sql
    if len(trees) != 1 or not isinstance(trees[0], exp.Query):
        return sql
    tree = trees[0]
    own_limit = _int(tree.args.get("limit"))
    own_offset = _int(tree.args.get("offset")) or 0
    if tree.args.get("limit") is not None and own_limit is None:
        return sql  # LIMIT of an expression: the broker judges it
    start = page * rows
    wanted = rows + 1
    if own_limit is not None:
        wanted = min(wanted, own_limit - start)
        if wanted <= 0:
            return None
    tree = tree.limit(wanted, copy=True)
    if start + own_offset:
        tree = tree.offset(start + own_offset, copy=False)
    return tree.sql(dialect="duckdb")
