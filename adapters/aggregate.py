"""A Scan's partial aggregate, computed by the database where it is exact.

The broker may ask a scan for ``GROUP BY`` groups with COUNT, SUM, MIN and
MAX instead of its rows (``accord.partial``). The answer must be the one the
broker would compute over the rows the scan would have sent, so the adapter
declines (and sends the rows, saying why in the header) unless:

- the whole predicate runs in the database exactly: nothing residual, no
  superset (a residual conjunct would have to drop rows before they count);
- no release filter column could withhold a row for a bad stored value
  (``adapters.convert.withheld`` works on rows, not on groups);
- every column it reads is stored as its logical value: a plain rename, no
  code table, no text dates, no dates stored as text, held by the source;
- the database groups and orders text as the federation does: GROUP BY on
  text only under exact equality; MIN and MAX of text only where ranges are
  bytewise (under ``COLLATE "C"`` on PostgreSQL).

SQLite keeps any value in any column; there each column is read as the raw
path reads it (an integer where a BIGINT is, a number where a DOUBLE is,
else NULL), so a stray value counts as the NULL it would have arrived as.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlglot import exp

from accord.partial import argument_type, parse_argument, partial_schema

if TYPE_CHECKING:
    import pyarrow as pa

    from accord.federation import LogicalTable, TableMapping
    from accord.v1 import adapter_pb2
    from adapters.dialects import DialectRules
    from adapters.translate import PhysicalScan

#: What SQLite's ``typeof`` may say of a value the raw path reads as the type.
_SQLITE_KINDS = {
    "BIGINT": ("integer",),
    "DOUBLE": ("integer", "real"),
    "VARCHAR": ("text", "integer", "real"),
}
_SQLITE_CASTS = {"BIGINT": "INTEGER", "DOUBLE": "REAL", "VARCHAR": "TEXT"}


@dataclass
class PartialScan:
    """The aggregate statement, its parameters and the Arrow types of its answer."""

    sql: str
    params: list[object]
    schema: pa.Schema
    types: list[pa.DataType]


class Declined(Exception):
    """The database cannot compute this partial aggregate exactly."""


def plan_partial(
    table: LogicalTable,
    mapping: TableMapping,
    rules: DialectRules,
    spec: adapter_pb2.PartialAggregate,
    physical: PhysicalScan,
    guarded: list[str],
) -> PartialScan:
    """The statement computing ``spec`` over the rows of ``physical``;
    Declined (with the reason) where it would not be exact."""
    schema = partial_schema(table, spec)  # InvalidQuery for a malformed spec
    if physical.residual or physical.superset or physical.tree is None:
        raise Declined("the predicate is not applied whole by the database")
    if guarded:
        raise Declined("the release filter withholds rows whose stored values do not fit")
    column = _Columns(table, mapping, rules)
    projections: list[exp.Expr] = [column.read(c, grouped=True) for c in spec.group_by]
    projections.append(exp.Count(this=exp.Star()))
    for call in spec.calls:
        tree = parse_argument(call.argument, table, call.function)
        if call.function in ("min", "max"):
            argument = column.ordered(tree.name)
        else:
            argument = tree.transform(
                lambda n: column.read(n.name) if isinstance(n, exp.Column) else n
            )
        if call.function == "sum" and argument_type(tree, table) == "DOUBLE":
            # Integer literals and columns alike: float arithmetic, as DuckDB's.
            argument = exp.cast(exp.paren(argument, copy=False), "DOUBLE")
        function = {"count": exp.Count, "sum": exp.Sum, "min": exp.Min, "max": exp.Max}
        projections.append(function[call.function](this=argument))
    select = physical.tree.copy()
    select.set("expressions", projections)
    select.set("limit", None)
    if spec.group_by:
        # By position: the same (guarded) expression as selected, in every dialect.
        select.set(
            "group",
            exp.Group(expressions=[exp.Literal.number(i + 1) for i in range(len(spec.group_by))]),
        )
    return PartialScan(
        select.sql(dialect=rules.name), list(physical.params), schema, list(schema.types)
    )


class _Columns:
    """Physical reads of logical columns, each checked to be its logical value."""

    def __init__(self, table: LogicalTable, mapping: TableMapping, rules: DialectRules) -> None:
        self.table, self.mapping, self.rules = table, mapping, rules

    def read(self, name: str, *, grouped: bool = False) -> exp.Expr:
        logical_type = self.table.columns[name]
        held = self.mapping.columns.get(name)
        if held is None:
            raise Declined(f"{name} is not held by this source")
        if held.codes or held.date_format:
            raise Declined(f"{name} is stored as codes or formatted text")
        if logical_type == "DATE" and not self.rules.native_dates:
            raise Declined(f"{name} is a date stored as text")
        if logical_type not in ("BIGINT", "DOUBLE", "VARCHAR", "DATE"):
            raise Declined(f"{name} is {logical_type}")
        if grouped and logical_type == "VARCHAR" and self.rules.text_equality != "exact":
            raise Declined(f"the collation groups texts of {name} that differ")
        ref: exp.Expr = exp.column(held.physical, quoted=True)
        if self.rules.name == "sqlite" and logical_type in _SQLITE_KINDS:
            kinds = [exp.Literal.string(k) for k in _SQLITE_KINDS[logical_type]]
            kind = exp.Anonymous(this="typeof", expressions=[ref.copy()])
            value = exp.cast(ref, _SQLITE_CASTS[logical_type])
            ref = exp.Case(ifs=[exp.If(this=exp.In(this=kind, expressions=kinds), true=value)])
        return ref

    def ordered(self, name: str) -> exp.Expr:
        """The column for MIN and MAX: text only where its order is bytewise."""
        ref = self.read(name)
        if self.table.columns[name] != "VARCHAR":
            return ref
        if self.rules.text_range == "exact":
            return ref
        if self.rules.text_range == "collate_c":
            return exp.Collate(this=ref, expression=exp.to_identifier("C", quoted=True))
        raise Declined(f"text order of {name} differs under this collation")
