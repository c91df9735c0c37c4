"""Translates one logical Scan into the source system's own SQL.

The broker asks in the federation's logical terms (table ``offenders``,
column ``status``, value ``'IN_CUSTODY'``); each system stores its own names,
codes and date formats. A conjunct of the predicate is pushed to the
database only when it translates *faithfully*: the physical condition holds
for exactly the rows whose logical values satisfy the logical one. Anything
else is left to the broker, which applies the whole predicate again anyway.

Literals travel as bound parameters, never spliced into the SQL text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from accord.errors import ConfigError, InvalidQuery
from accord.federation import (
    ORDER_PRESERVING_DATE_FORMATS,
    ColumnMapping,
    LogicalTable,
    TableMapping,
)

#: Node types a Scan predicate may contain at all (DESIGN.md: columns,
#: literals, comparisons, boolean logic, IN, LIKE, BETWEEN, IS NULL).
PLAIN_NODES: tuple[type[exp.Expr], ...] = (
    exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.Neg, exp.Paren,
    exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
    exp.In, exp.Like, exp.Between, exp.Is, exp.Cast, exp.DataType,
)

_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_RANGE = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Between)


class Untranslatable(Exception):
    """This conjunct cannot be pushed faithfully; the broker keeps it."""


@dataclass
class PhysicalScan:
    """What the adapter runs for one Scan, and what it reports back."""

    sql: str
    params: list[Any]
    columns: list[str]
    pushed: list[str] = field(default_factory=list)
    residual: list[str] = field(default_factory=list)
    limit_pushed: bool = False
    dialect: str = "sqlite"


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


def plan_scan(
    table: LogicalTable,
    mapping: TableMapping,
    columns: list[str],
    predicate: str,
    limit: int,
    dialect: str,
    release_filter: str | None = None,
) -> PhysicalScan:
    """Builds the physical SELECT for a logical scan.

    >>> from accord.federation import ColumnMapping, LogicalTable, TableMapping
    >>> t = LogicalTable("offenders", {"fps_number": "VARCHAR", "status": "VARCHAR"})
    >>> m = TableMapping("offenders", "CLIENT", {
    ...     "fps_number": ColumnMapping("fps_number", "FPS"),
    ...     "status": ColumnMapping("status", "STAT", {"C": "IN_CUSTODY"})})
    >>> s = plan_scan(t, m, ["fps_number"], "status = 'IN_CUSTODY'", 10, "sqlite")
    >>> s.sql, s.params, s.limit_pushed
    ('SELECT "FPS" FROM "CLIENT" WHERE "STAT" IN (?, ?) LIMIT 10', ['C', 'IN_CUSTODY'], True)
    """
    if not columns:
        raise InvalidQuery(f"a scan of {table.name} must ask for at least one column")
    for column in columns:
        if column not in table.columns:
            raise InvalidQuery(f"table {table.name} has no column {column!r}")
    tree = parse_predicate(predicate, table)
    params: list[Any] = []
    pushed: list[exp.Expr] = []
    # The jurisdiction's release filter is not negotiable: all of it runs in
    # the database, or the scan is refused.
    for conjunct in _conjuncts(parse_predicate(release_filter or "", table)):
        try:
            pushed.append(_translate(conjunct, table, mapping, params))
        except Untranslatable as exc:
            raise ConfigError(
                f"release filter {conjunct.sql('duckdb')!r} of {table.name} cannot be "
                "applied faithfully by this source's database; rewrite it"
            ) from exc
    pushed_text: list[str] = []
    residual: list[str] = []
    for conjunct in _conjuncts(tree):
        try:
            local_params: list[Any] = []
            pushed.append(_translate(conjunct, table, mapping, local_params))
            params.extend(local_params)
            pushed_text.append(conjunct.sql("duckdb"))
        except Untranslatable:
            residual.append(conjunct.sql("duckdb"))

    projections: list[exp.Expr] = [
        exp.column(mapping.columns[c].physical, quoted=True) if c in mapping.columns else exp.null()
        for c in columns
    ]
    select = exp.select(*projections).from_(exp.to_table(_quoted(mapping.physical_table)))
    if pushed:
        select = select.where(exp.and_(*pushed, copy=False), copy=False)
    limit_pushed = limit > 0 and not residual
    if limit_pushed:
        select = select.limit(limit, copy=False)
    return PhysicalScan(
        sql=select.sql(dialect=dialect),
        params=params,
        columns=list(columns),
        pushed=pushed_text,
        residual=residual,
        limit_pushed=limit_pushed,
        dialect=dialect,
    )


def _quoted(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql()


def _conjuncts(tree: exp.Expr | None) -> list[exp.Expr]:
    if tree is None:
        return []
    return [c.unnest() for c in tree.flatten()] if isinstance(tree, exp.And) else [tree.unnest()]


def _translate(
    node: exp.Expr, table: LogicalTable, mapping: TableMapping, params: list[Any]
) -> exp.Expr:
    """The physical condition for one logical condition, or Untranslatable."""
    node = node.unnest()
    if isinstance(node, (exp.And, exp.Or)):
        return node.__class__(
            this=_translate(node.this, table, mapping, params),
            expression=_translate(node.expression, table, mapping, params),
        )
    if isinstance(node, exp.Not):
        return exp.Not(this=exp.paren(_translate(node.this, table, mapping, params), copy=False))
    if isinstance(node, exp.Boolean):
        return node.copy()
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        return exp.Is(this=_column_ref(node.this, mapping), expression=exp.null())
    if isinstance(node, (*_COMPARISONS, exp.Like, exp.In, exp.Between)):
        return _translate_comparison(node, table, mapping, params)
    raise Untranslatable(node.sql())


def _translate_comparison(
    node: exp.Expr, table: LogicalTable, mapping: TableMapping, params: list[Any]
) -> exp.Expr:
    column = node.this
    if not isinstance(column, exp.Column):
        raise Untranslatable(node.sql())  # literal on the left, or an expression
    logical_type = table.columns[column.name]
    held = mapping.columns.get(column.name)
    if held is None:
        # The system does not hold the column: it reads as NULL, so the
        # comparison is NULL too, which filters exactly as the broker would.
        return exp.null()
    if isinstance(node, exp.In):
        if node.args.get("query") or not node.expressions:
            raise Untranslatable(node.sql())
        values = [_literal_value(v, logical_type) for v in node.expressions]
        return _in_physical(column, held, values, params, negate=False)
    if isinstance(node, exp.Between):
        low = _literal_value(node.args["low"], logical_type)
        high = _literal_value(node.args["high"], logical_type)
        _require_ordered(held, logical_type)
        return exp.Between(
            this=_column_ref(column, mapping),
            low=_bind(_physical_value(held, low), params),
            high=_bind(_physical_value(held, high), params),
        )
    value = _literal_value(node.expression, logical_type)
    if held.codes:
        if isinstance(node, exp.EQ):
            return _in_physical(column, held, [value], params, negate=False)
        if isinstance(node, exp.NEQ):
            return _in_physical(column, held, [value], params, negate=True)
        raise Untranslatable(node.sql())  # codes do not keep order or patterns
    if isinstance(node, exp.Like):
        if logical_type != "VARCHAR":
            raise Untranslatable(node.sql())
    elif isinstance(node, _RANGE):
        _require_ordered(held, logical_type)
    return node.__class__(
        this=_column_ref(column, mapping), expression=_bind(_physical_value(held, value), params)
    )


def _in_physical(
    column: exp.Column, held: ColumnMapping, values: list[Any], params: list[Any], *, negate: bool
) -> exp.Expr:
    """``column [NOT] IN values`` over the physical values that map onto ``values``."""
    physical: list[Any] = []
    for value in values:
        physical.extend(_preimage(held, value))
    ref = exp.column(held.physical, quoted=True)
    if not physical:
        # No stored value maps onto these: IN is false, NOT IN is "not NULL".
        return exp.not_(exp.Is(this=ref, expression=exp.null())) if negate else exp.false()
    condition = exp.In(this=ref, expressions=[_bind(v, params) for v in physical])
    return exp.not_(condition) if negate else condition


def _preimage(held: ColumnMapping, value: Any) -> list[Any]:
    """Physical values the adapter reads as ``value`` (unmapped codes pass through)."""
    if not held.codes:
        return [_physical_value(held, value)]
    found = [code for code, logical in held.codes.items() if logical == value]
    if value not in held.codes:
        found.append(value)
    return found


def _require_ordered(held: ColumnMapping, logical_type: str) -> None:
    if held.codes:
        raise Untranslatable("coded column")
    if logical_type == "DATE" and held.date_format not in (None, *ORDER_PRESERVING_DATE_FORMATS):
        raise Untranslatable(f"dates stored as {held.date_format} do not sort as text")


def _column_ref(node: exp.Expr, mapping: TableMapping) -> exp.Expr:
    if not isinstance(node, exp.Column):
        raise Untranslatable(node.sql())
    held = mapping.columns.get(node.name)
    return exp.column(held.physical, quoted=True) if held else exp.null()


def _bind(value: Any, params: list[Any]) -> exp.Expr:
    params.append(value)
    return exp.Placeholder()


def _literal_value(node: exp.Expr, logical_type: str) -> Any:
    """The Python value of a literal, only when its type matches the column's exactly."""
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        return -_literal_value(node.this, logical_type)
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):
        if node.to.is_type(exp.DataType.Type.DATE) and logical_type == "DATE":
            return _parse_date(node.this.this)
        raise Untranslatable(node.sql())
    if not isinstance(node, exp.Literal):
        raise Untranslatable(node.sql())
    if node.is_string:
        if logical_type == "VARCHAR":
            return node.this
        if logical_type == "DATE":
            return _parse_date(node.this)
        raise Untranslatable(node.sql())
    if logical_type == "BIGINT" and node.is_int:
        return int(node.this)
    if logical_type == "DOUBLE":
        return float(node.this)
    raise Untranslatable(node.sql())


def _parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise Untranslatable(text) from exc


def _physical_value(held: ColumnMapping, value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.strftime(held.date_format) if held.date_format else value.isoformat()
    return value
