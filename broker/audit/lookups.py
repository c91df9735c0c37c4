"""The FPS numbers a query looks up, however they were written, for its record.

It exists so that ``accord audit search --fps 1051244T`` finds a query that
spelled the number ``'1051' || '244T'``, ``CAST('1051244T' AS VARCHAR)``,
``UPPER('1051244t')``, in an IN list or in a VALUES list joined on
``fps_number``: searching the SQL text finds only the plain spelling.

Constant string expressions are folded first: sqlglot's ``simplify`` folds
``||`` and ``CONCAT`` of literals; this module also folds CAST to a text
type, UPPER, LOWER and TRIM of a folded string. Then two nets are cast:

- every folded string compared (``=``, ``<>``, ``IN``, ``LIKE`` without a
  wildcard) with an expression over an ``fps_number`` column;
- every folded string anywhere in the query shaped like an FPS number
  (seven digits and a letter), which catches a VALUES list, a CTE or a
  subquery the number reaches a comparison through.

Search compares case-insensitively. A number built with functions this module
does not fold (SUBSTRING, REPLACE, ...) is missed: the allow-list of
functions bounds what a caller can use, and the SQL text is kept as well.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.simplify import simplify

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

    >>> import sqlglot
    >>> fps_numbers(sqlglot.parse_one(
    ...     "SELECT 1 FROM offenders WHERE fps_number = '1051' || '244T'"))
    ['1051244T']
    >>> fps_numbers(sqlglot.parse_one(
    ...     "SELECT 1 FROM offenders WHERE LOWER(fps_number) IN (LOWER('X'), 'y')"))
    ['x', 'y']
    """
    try:
        folded = simplify(tree.copy())
    except (SqlglotError, RecursionError):  # the shape limits make this unlikely
        folded = tree
    found: set[str] = set()
    for node in folded.walk():
        if isinstance(node, exp.Predicate):
            found.update(_compared_with_fps(node))
        value = constant_string(node)
        inside_constant = node.parent is not None and constant_string(node.parent) is not None
        if value is not None and not inside_constant and FPS_SHAPE.fullmatch(value.strip()):
            found.add(value.strip())  # whole constants only, not their parts
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
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else None
    if isinstance(node, exp.DPipe | exp.Concat):
        parts = [node.this, node.expression] if isinstance(node, exp.DPipe) else node.expressions
        values = [constant_string(p) for p in parts]
        return None if any(v is None for v in values) else "".join(v or "" for v in values)
    fold = _string_function(node)
    inner = constant_string(node.this) if fold is not None else None
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


def _compared_with_fps(node: exp.Predicate) -> list[str]:
    """The folded strings ``node`` compares with an expression over fps_number."""
    if isinstance(node, exp.In):
        sides = [node.this]
        others = list(node.expressions)
    elif isinstance(node, exp.EQ | exp.NEQ | exp.Like | exp.ILike):
        sides, others = [node.this, node.expression], [node.this, node.expression]
    else:
        return []
    if not any(_reads_fps(side) for side in sides):
        return []
    values = [constant_string(other) for other in others if not _reads_fps(other)]
    if isinstance(node, exp.Like | exp.ILike):
        values = [v for v in values if v is not None and not set(v) & {"%", "_"}]
    return [v.strip() for v in values if v]


def _reads_fps(node: exp.Expr) -> bool:
    return any(col.name == FPS_COLUMN for col in node.find_all(exp.Column))
