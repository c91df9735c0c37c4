"""A prepared statement's parameters, bound as literals through sqlglot.

The statement is parsed once; each placeholder (``?`` in order, or ``$n``)
is replaced in the tree by a literal built from the bound value, and the
tree is generated back to SQL by sqlglot. No value is ever spliced into
text, so a value can only ever be a value: the SQL that results then goes
through the same validation and policy rewrite as any query.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from accord.errors import InvalidQuery

if TYPE_CHECKING:
    import pyarrow as pa

DIALECT = "duckdb"


def placeholders(sql: str) -> int:
    """How many parameters ``sql`` takes.

    >>> placeholders("SELECT surname FROM offenders WHERE fps_number = ? AND status = ?")
    2
    >>> placeholders("SELECT surname FROM offenders WHERE fps_number = $1 OR alias = $1")
    1
    """
    return len(set(_slots(_parse(sql))))


def bind(sql: str, values: list[object]) -> str:
    """``sql`` with its placeholders replaced by ``values`` as literals.

    >>> bind("SELECT surname FROM offenders WHERE fps_number = ?", ["1'; DROP x"])
    "SELECT surname FROM offenders WHERE fps_number = '1''; DROP x'"
    >>> bind("SELECT 1 WHERE $2 > $1", [1, 2.5])
    'SELECT 1 WHERE 2.5 > 1'
    """
    tree = _parse(sql)
    slots = _slots(tree)
    if not slots and not values:
        return sql  # nothing to bind: the statement as written
    if len(values) != len(set(slots)):
        raise InvalidQuery(
            f"the statement takes {len(set(slots))} parameters; {len(values)} were bound",
            field="parameters",
        )
    for node, index in zip(list(tree.find_all(exp.Placeholder)), slots, strict=True):
        node.replace(literal(values[index]))
    return tree.sql(dialect=DIALECT)


def row_values(table: pa.Table) -> list[object]:
    """The one row of parameters a client bound (one execution per statement)."""
    if table.num_rows != 1:
        raise InvalidQuery(
            f"bind one row of parameters per execution; {table.num_rows} were sent",
            field="parameters",
        )
    return [table.column(i)[0].as_py() for i in range(table.num_columns)]


def literal(value: object) -> exp.Expr:
    """A SQL literal for one parameter value.

    >>> literal(None).sql(), literal(True).sql(), literal(dt.date(2026, 1, 2)).sql("duckdb")
    ('NULL', 'TRUE', "CAST('2026-01-02' AS DATE)")
    """
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float | decimal.Decimal):
        return exp.Literal.number(value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, dt.datetime):
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.Type.TIMESTAMP)
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.Type.DATE)
    raise InvalidQuery(
        f"a parameter of type {type(value).__name__} cannot be bound "
        "(use text, numbers, booleans, dates, timestamps or NULL)",
        field="parameters",
    )


def _parse(sql: str) -> exp.Expr:
    try:
        tree = sqlglot.parse_one(sql, dialect=DIALECT)
    except (ParseError, TokenError, RecursionError) as exc:  # as broker.validate reads them
        raise InvalidQuery("the statement is not valid SQL (DuckDB dialect)") from exc
    if tree is None:
        raise InvalidQuery("the statement is empty")
    return tree


def _slots(tree: exp.Expr) -> list[int]:
    """The parameter each placeholder takes (0-based), in tree order: ``?``
    in order, or ``$1, $2, ...`` (each used at least once), never mixed."""
    names = [n.this for n in tree.find_all(exp.Placeholder)]
    if all(name is None for name in names):
        return list(range(len(names)))
    numbers = [int(n) for n in names if isinstance(n, str) and n.isdigit() and int(n) >= 1]
    if len(numbers) != len(names) or set(numbers) != set(range(1, max(numbers) + 1)):
        raise InvalidQuery(
            "parameters are ? (in order) or $1, $2, ... each used (not named, not mixed)",
            field="parameters",
        )
    return [n - 1 for n in numbers]
