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
import operator
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from accord.federation import KeyDomain

_FLIPPED: dict[type[exp.Expr], type[exp.Expr]] = {
    exp.LT: exp.GT,
    exp.LTE: exp.GTE,
    exp.GT: exp.LT,
    exp.GTE: exp.LTE,
    exp.EQ: exp.EQ,
}
_HOLDS: dict[type[exp.Expr], Callable[[Any, Any], Any]] = {
    exp.EQ: operator.eq,
    exp.LT: operator.lt,
    exp.LTE: operator.le,
    exp.GT: operator.gt,
    exp.GTE: operator.ge,
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
        low = exp.GTE(this=node.this, expression=node.args["low"])
        high = exp.LTE(this=node.this, expression=node.args["high"])
        return _may(low, domains) and _may(high, domains)
    if isinstance(node, exp.In) and node.expressions and not node.args.get("query"):
        return any(_may(exp.EQ(this=node.this, expression=v), domains) for v in node.expressions)
    return _comparison(node, domains) if type(node) in _FLIPPED else True


def _comparison(node: exp.Expr, domains: Mapping[str, KeyDomain]) -> bool:
    op: type[exp.Expr] = type(node)
    column, literal = node.this.unnest(), node.expression.unnest()
    if not isinstance(column, exp.Column):
        column, literal, op = literal, column, _FLIPPED[op]
    domain = domains.get(column.name) if isinstance(column, exp.Column) else None
    value = _value(literal) if domain is not None else None
    if domain is None or value is None:
        return True
    if domain.values is not None:
        sample = next(iter(domain.values))
    else:
        sample = domain.minimum if domain.minimum is not None else domain.maximum
    if isinstance(sample, float) and isinstance(value, Decimal):
        value = float(value)  # DuckDB compares a DOUBLE with a decimal as doubles
    holds = _HOLDS[op]
    try:
        if domain.values is not None:
            return any(holds(v, value) for v in domain.values)
        low, high = domain.minimum, domain.maximum
        if op is exp.EQ:
            return (low is None or low <= value) and (high is None or value <= high)
        if op in (exp.LT, exp.LTE):  # column below value: the least row may be
            return low is None or bool(holds(low, value))
        return high is None or bool(holds(high, value))  # GT, GTE: the greatest
    except TypeError:  # a literal of another type than the column's: DuckDB decides
        return True


def _value(node: exp.Expr) -> Any:
    """A literal's value: a number (exact), a string or a date; else None."""
    if isinstance(node, exp.Neg):
        inner = node.this.unnest()
        number = _value(inner) if isinstance(inner, exp.Literal) else None
        return -number if isinstance(number, Decimal) else None
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.DATE):
        inner = node.this
        text = inner.this if isinstance(inner, exp.Literal) and inner.is_string else ""
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            return None
    if not isinstance(node, exp.Literal) or node.is_string:
        return node.this if isinstance(node, exp.Literal) else None
    try:
        return Decimal(node.this)
    except InvalidOperation:
        return None
