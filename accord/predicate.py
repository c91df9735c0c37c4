"""The Scan predicate grammar: the one contract between broker and adapters
on what a pushed predicate may say.

The broker pushes a conjunct only if :func:`is_plain` holds for it; an
adapter accepts a Scan only if :func:`parse_predicate` does (columns of the
scanned table, literals, comparisons, boolean logic, IN, LIKE, BETWEEN,
IS NULL, casts of literals). Both read the same node list, so the two sides
cannot drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from accord.errors import InvalidQuery

if TYPE_CHECKING:
    from accord.federation import LogicalTable

#: Node types a Scan predicate may contain at all (DESIGN.md: columns,
#: literals, comparisons, boolean logic, IN, LIKE, BETWEEN, IS NULL).
PLAIN_NODES: tuple[type[exp.Expr], ...] = (
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Boolean,
    exp.Null,
    exp.Neg,
    exp.Paren,
    exp.And,
    exp.Or,
    exp.Not,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.In,
    exp.Like,
    exp.Between,
    exp.Is,
    exp.Cast,
    exp.DataType,
)


def is_plain(tree: exp.Expr) -> bool:
    """Whether an adapter accepts this predicate's shape (see parse_predicate)."""
    return all(
        isinstance(node, PLAIN_NODES)
        and not (isinstance(node, exp.Cast) and not isinstance(node.this, exp.Literal))
        for node in tree.walk()
    )


def parse_predicate(predicate: str, table: LogicalTable) -> exp.Expr | None:
    """Parses and checks a Scan predicate: plain SQL over the table's columns only."""
    if not predicate.strip():
        return None
    try:
        tree = sqlglot.parse_one(predicate, read="duckdb")
    except ParseError as exc:
        first = exc.errors[0]["description"] if exc.errors else str(exc)
        raise InvalidQuery(f"scan predicate does not parse: {first}") from exc
    for node in tree.walk():
        if not isinstance(node, PLAIN_NODES):
            raise InvalidQuery(
                f"scan predicate may not contain {node.key.upper()}: only columns, literals, "
                "comparisons, AND/OR/NOT, IN, LIKE, BETWEEN and IS NULL are accepted"
            )
        if isinstance(node, exp.Column) and (node.table or node.name not in table.columns):
            raise InvalidQuery(
                f"scan predicate names unknown column {node.sql()!r} of {table.name}"
            )
        if isinstance(node, exp.Cast) and not isinstance(node.this, exp.Literal):
            raise InvalidQuery("scan predicate may cast literals only")
    return tree
