"""Shard pruning: a source whose declared key domain (``shards:`` in the
federation file, ``accord.federation.KeyDomain``) cannot satisfy a pushed
predicate is not asked at all.

The test is conservative: a predicate is known to match nothing only
through comparisons of a shard column with a literal (=, <, <=, >, >=,
BETWEEN, IN) combined by AND and OR; anything else may match. NULLs in the
column never make a comparison true, so a domain of the non-NULL values is
enough. Values compare as DuckDB compares them: a decimal literal with an
integer column exactly, with a DOUBLE column as a double.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from accord.federation import KeyDomain

_FLIPPED: dict[type[exp.Expr], type[exp.Expr]] = {
    exp.LT: exp.GT,
    exp.LTE: exp.GTE,
    exp.GT: exp.LT,
    exp.GTE: exp.LTE,
    exp.EQ: exp.EQ,
}


def may_match(predicates: Iterable[str], domains: Mapping[str, KeyDomain] | None) -> bool:
    """Whether rows within ``domains`` may satisfy every predicate (DuckDB SQL)."""
    if not domains:
        return True
    return all(_may(sqlglot.parse_one(p, read="duckdb"), domains) for p in predicates)


def _may(node: exp.Expr, domains: Mapping[str, KeyDomain]) -> bool:
    node = node.unnest()
    if isinstance(node, exp.And):
        return _may(node.this, domains) and _may(node.expression, domains)
    if isinstance(node, exp.Or):
        return _may(node.this, domains) or _may(node.expression, domains)
    if isinstance(node, exp.Between) and not node.args.get("symmetric"):
        low, high = (
            exp.GTE(this=node.this, expression=node.args["low"]),
            exp.LTE(this=node.this, expression=node.args["high"]),
        )
        return _may(low, domains) and _may(high, domains)
    if isinstance(node, exp.In):
        if node.args.get("query") or not node.expressions:
            return True
        return any(_may(exp.EQ(this=node.this, expression=v), domains) for v in node.expressions)
    if type(node) in _FLIPPED:
        return _comparison(node, domains)
    return True


def _comparison(node: exp.Expr, domains: Mapping[str, KeyDomain]) -> bool:
    op: type[exp.Expr] = type(node)
    column, literal = node.this.unnest(), node.expression.unnest()
    if not isinstance(column, exp.Column):
        column, literal, op = literal, column, _FLIPPED[op]
    if not isinstance(column, exp.Column) or column.name not in domains:
        return True
    domain = domains[column.name]
    value = _value(literal)
    if value is None:
        return True
    if domain.values is not None:
        sample = next(iter(domain.values))
    else:
        sample = domain.minimum if domain.minimum is not None else domain.maximum
    if isinstance(sample, float) and isinstance(value, Decimal):
        value = float(value)  # DuckDB compares a DOUBLE with a decimal as doubles
    try:
        if domain.values is not None:
            return any(_holds(op, v, value) for v in domain.values)
        low, high = domain.minimum, domain.maximum
        if op is exp.EQ:
            return (low is None or low <= value) and (high is None or value <= high)
        if op in (exp.LT, exp.LTE):  # column below value: some row at least low
            return low is None or _holds(op, low, value)
        return high is None or _holds(op, high, value)  # GT, GTE
    except TypeError:  # a literal of another type than the column's: DuckDB decides
        return True


def _holds(op: type[exp.Expr], left: Any, right: Any) -> bool:
    if op is exp.EQ:
        return bool(left == right)
    if op is exp.LT:
        return bool(left < right)
    if op is exp.LTE:
        return bool(left <= right)
    if op is exp.GT:
        return bool(left > right)
    return bool(left >= right)


def _value(node: exp.Expr) -> Any:
    """A literal's value: a number (exact), a string or a date; else None."""
    negative = isinstance(node, exp.Neg)
    if negative:
        node = node.this.unnest()
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.DATE) and not negative:
        inner = node.this
        if isinstance(inner, exp.Literal) and inner.is_string:
            try:
                return dt.date.fromisoformat(inner.this)
            except ValueError:
                return None
        return None
    if not isinstance(node, exp.Literal):
        return None
    if node.is_string:
        return None if negative else node.this
    try:
        number = Decimal(node.this)
    except InvalidOperation:
        return None
    return -number if negative else number
