"""The FPS numbers a query looks up, however they were written, for its record.

It exists so that ``accord audit search --fps 1051244T`` finds a query that
spelled the number ``'1051' || '244T'``, ``CAST('1051244T' AS VARCHAR)``,
``UPPER('1051244t')``, in an IN list or in a VALUES list joined on
``fps_number``: searching the SQL text finds only the plain spelling.

Constant string expressions are folded (:func:`constant_string`): ``||``
and ``CONCAT`` of literals, as sqlglot's ``simplify`` would, and also CAST
to a text type, UPPER, LOWER and TRIM, which it leaves alone. Not with
``simplify`` itself: it costs far more than the query (51 s for an allowed
800-term OR), and this runs for every query. Then two nets are cast:

- every folded string compared (``=``, ``<>``, ``IN``, ``LIKE`` without a
  wildcard) with an expression over an ``fps_number`` column;
- every folded string anywhere in the query shaped like an FPS number
  (seven digits and a letter), which catches a VALUES list, a CTE or a
  subquery the number reaches a comparison through.

``broker.prepare`` calls :func:`fps_numbers` on the validated tree, off the
event loop (``PreparedQuery.fps_numbers``); ``QueryRecord.planned`` copies
the list. Search compares case-insensitively. A number built with functions this module
does not fold (SUBSTRING, REPLACE, ...) is missed: the allow-list of
functions bounds what a caller can use, and the SQL text is kept as well.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

if TYPE_CHECKING:
    from collections.abc import Callable

#: The logical model's person key (accord.federation's default person key).
FPS_COLUMN = "fps_number"
#: What an FPS number looks like: seven digits and a check letter.
FPS_SHAPE = re.compile(r"[0-9]{7}[A-Za-z]")
_TEXT_TYPES = frozenset({exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT, exp.DataType.Type.CHAR})
#: Most numbers one record keeps (the IN-list limit bounds a query anyway).
MAX_FPS_NUMBERS = 1000


def fps_numbers(tree: exp.Expr) -> list[str]:
    """The FPS numbers ``tree`` (a validated query) compares or names, sorted.

    One pass from the leaves up (a long ``||`` chain is deep: no recursion),
    linear in the size of the tree.

    >>> import sqlglot
    >>> fps_numbers(sqlglot.parse_one(
    ...     "SELECT 1 FROM offenders WHERE fps_number = '1051' || '244T'"))
    ['1051244T']
    >>> fps_numbers(sqlglot.parse_one(
    ...     "SELECT 1 FROM offenders WHERE LOWER(fps_number) IN (LOWER('X'), 'y')"))
    ['x', 'y']
    """
    folded: dict[int, str | None] = {}  # id(node) -> its constant string
    reads: dict[int, bool] = {}  # id(node) -> whether it reads fps_number
    found: set[str] = set()
    for node in reversed(list(tree.walk())):  # children before their parent
        children = list(node.iter_expressions())
        reads[id(node)] = (isinstance(node, exp.Column) and node.name == FPS_COLUMN) or any(
            reads[id(c)] for c in children
        )
        folded[id(node)] = _fold(node, folded)
        if isinstance(node, exp.Predicate):
            found.update(_compared_with_fps(node, folded, reads))
    for node in tree.walk():
        value = folded[id(node)]
        if value is None or (node.parent is not None and folded.get(id(node.parent))):
            continue  # whole constants only, not their parts
        if FPS_SHAPE.fullmatch(value.strip()):
            found.add(value.strip())
    return sorted(found)[:MAX_FPS_NUMBERS]


def fps_numbers_in_sql(sql: str) -> list[str]:
    """:func:`fps_numbers` of a validated query's SQL (DuckDB's dialect, as
    ``broker.prepare`` writes it); [] if it does not parse (it always should)."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except (SqlglotError, RecursionError):
        return []
    return fps_numbers(tree)


def constant_string(node: exp.Expr) -> str | None:
    """The string ``node`` always evaluates to, if this module can fold it.

    >>> import sqlglot
    >>> constant_string(sqlglot.parse_one("UPPER(CAST(TRIM(' ab ') AS VARCHAR))"))
    'AB'
    """
    folded: dict[int, str | None] = {}
    for each in reversed(list(node.walk())):
        folded[id(each)] = _fold(each, folded)
    return folded[id(node)]


def _fold(node: exp.Expr, folded: dict[int, str | None]) -> str | None:
    """``node``'s constant string, its operands' already in ``folded``."""
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else None
    if isinstance(node, exp.DPipe | exp.Concat):
        parts = [node.this, node.expression] if isinstance(node, exp.DPipe) else node.expressions
        values = [folded.get(id(p)) if p is not None else None for p in parts]
        return None if any(v is None for v in values) else "".join(v or "" for v in values)
    fold = _string_function(node)
    inner = folded.get(id(node.this)) if fold is not None else None
    return fold(inner) if fold is not None and inner is not None else None


def _string_function(node: exp.Expr) -> Callable[[str], str] | None:
    """What ``node`` does to the one string it wraps, if it is one this module folds."""
    if isinstance(node, exp.Paren) or (isinstance(node, exp.Cast) and node.to.this in _TEXT_TYPES):
        return str
    if isinstance(node, exp.Upper):
        return str.upper
    if isinstance(node, exp.Lower):
        return str.lower
    if isinstance(node, exp.Trim) and node.args.get("expression") is None:
        return lambda text: text.strip(" ")
    return None


def _compared_with_fps(
    node: exp.Predicate, folded: dict[int, str | None], reads: dict[int, bool]
) -> list[str]:
    """The folded strings ``node`` compares with an expression over fps_number."""
    if isinstance(node, exp.In):
        sides, others = [node.this], list(node.expressions)
    elif isinstance(node, exp.EQ | exp.NEQ | exp.Like | exp.ILike):
        sides = others = [node.this, node.expression]
    else:
        return []
    if not any(reads.get(id(side)) for side in sides):
        return []
    values = [folded.get(id(other)) for other in others if not reads.get(id(other))]
    if isinstance(node, exp.Like | exp.ILike):
        values = [v for v in values if v is not None and not set(v) & {"%", "_"}]
    return [v.strip() for v in values if v]
