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
  except a column grouped on, which may be coded: the groups are the stored
  codes, decoded as the rows would be (two codes of one value are two
  partial groups, which the final aggregation adds up);
- the database groups and orders text as the federation does: GROUP BY on
  text under exact equality, or on its bytes (MariaDB: ``CAST(x AS
  BINARY)``); MIN and MAX of text only where ranges are bytewise (under
  ``COLLATE "C"`` on PostgreSQL).

A conjunct over dates stored as text is only a superset in the database
(text that is no date, or not laid out as the format prints it, passes it
for the broker to judge). Such a scan is checked first: the distinct stored
texts of those columns in the table, each parsed as the rows would be. When
every one is a date printed as the format prints it, the conjunct is exact
on these rows and the aggregate stands; else the adapter declines. A check
that passed is not run again while the backend's data version stays
(``Backend.version``: SQLite's file and log, as a commit changes them).

SQLite keeps any value in any column; there each column is read as the raw
path reads it (an integer where a BIGINT is, a number where a DOUBLE is,
else NULL), so a stray value counts as the NULL it would have arrived as.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from accord.partial import argument_type, parse_argument, partial_schema
from accord.predicate import parse_predicate
from adapters.convert import column_converters, print_dates

if TYPE_CHECKING:
    from collections.abc import Callable

    from accord.federation import LogicalTable, TableMapping
    from accord.v1 import adapter_pb2
    from adapters.dialects import DialectRules
    from adapters.translate import PhysicalScan

#: What SQLite's ``typeof`` may say of a value the raw path reads as the
#: type, and which of them is that type already (the others are cast).
_SQLITE_KINDS = {
    "BIGINT": (("integer", "integer"),),
    "DOUBLE": (("real", "real"), ("integer", "real")),
    "VARCHAR": (("text", "text"), ("integer", "text"), ("real", "text")),
}
_SQLITE_CASTS = {"BIGINT": "INTEGER", "DOUBLE": "REAL", "VARCHAR": "TEXT"}


@dataclass
class DateCheck:
    """The distinct stored texts of one text-date column among the scan's rows."""

    sql: str
    params: list[object]
    date_format: str


@dataclass
class PartialScan:
    """The aggregate statement, its parameters and the Arrow types of its answer."""

    sql: str
    params: list[object]
    schema: pa.Schema
    types: list[pa.DataType]
    #: Per output column, what turns the stored value into the logical one.
    converters: list[Callable[[pa.Array], pa.Array] | None] = field(default_factory=list)
    #: To run before: the scan's text dates must all be canonical (see above).
    checks: list[DateCheck] = field(default_factory=list)

    @property
    def coded(self) -> int:
        """How many leading columns (groups) may decode to NULL, as rows would."""
        return sum(c is not None for c in self.converters)


#: Most distinct date texts a check reads before it declines.
MAX_CHECKED_DATES = 100_000


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
    if physical.residual or physical.tree is None:
        raise Declined("the predicate is not applied whole by the database")
    checks = _date_checks(table, mapping, rules, physical) if physical.superset else []
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
    types = list(schema.types)
    converters = column_converters(table, mapping, list(spec.group_by))
    for i, convert in enumerate(converters):
        if convert is not None:
            types[i] = pa.string()  # the stored code
    return PartialScan(
        select.sql(dialect=rules.name),
        list(physical.params),
        schema,
        types,
        [*converters, *([None] * (len(types) - len(converters)))],
        checks,
    )


def _date_checks(
    table: LogicalTable, mapping: TableMapping, rules: DialectRules, physical: PhysicalScan
) -> list[DateCheck]:
    """The checks that make a superset of text dates exact (module docstring);
    Declined where the superset has another cause (a collation)."""
    if rules.text_equality != "exact" or rules.like != "exact" or physical.tree is None:
        raise Declined("the predicate is not applied whole by the database")
    named: set[str] = set()
    for text in physical.superset:
        tree = parse_predicate(text, table)
        if tree is not None:
            named.update(c.name for c in tree.find_all(exp.Column))
    checks = []
    for name in sorted(named):
        held = mapping.columns.get(name)
        if held is None or table.columns[name] != "DATE" or held.codes:
            raise Declined("the predicate is not applied whole by the database")
        fmt = held.date_format or ("%Y-%m-%d" if not rules.native_dates else None)
        if fmt is None:
            raise Declined("the predicate is not applied whole by the database")
        # Over the whole table, not only the scan's rows: a superset, so as
        # sure, and without the costly conjuncts it is there to make exact.
        select = exp.select(exp.column(held.physical, quoted=True)).from_(
            physical.tree.args["from_"].this.copy()
        )
        select.set("group", exp.Group(expressions=[exp.Literal.number(1)]))
        checks.append(DateCheck(select.sql(dialect=rules.name), [], fmt))
    return checks


def canonical_dates(texts: pa.Array, fmt: str) -> bool:
    """Whether every text is a date as ``fmt`` prints it (NULLs aside)."""
    texts = pc.drop_null(texts)
    if not len(texts):
        return True
    stamps = pc.strptime(texts, format=fmt, unit="s", error_is_null=True)
    return bool(pc.all(pc.fill_null(pc.equal(print_dates(stamps, fmt), texts), False)).as_py())


class _Columns:
    """Physical reads of logical columns, each checked to be its logical value."""

    def __init__(self, table: LogicalTable, mapping: TableMapping, rules: DialectRules) -> None:
        self.table, self.mapping, self.rules = table, mapping, rules

    def read(self, name: str, *, grouped: bool = False) -> exp.Expr:
        logical_type = self.table.columns[name]
        held = self.mapping.columns.get(name)
        if held is None:
            raise Declined(f"{name} is not held by this source")
        if held.date_format or (held.codes and not grouped):
            raise Declined(f"{name} is stored as codes or formatted text")
        if logical_type == "DATE" and not self.rules.native_dates:
            raise Declined(f"{name} is a date stored as text")
        if logical_type not in ("BIGINT", "DOUBLE", "VARCHAR", "DATE"):
            raise Declined(f"{name} is {logical_type}")
        ref: exp.Expr = exp.column(held.physical, quoted=True)
        if grouped and logical_type == "VARCHAR" and self.rules.text_equality != "exact":
            if self.rules.byte_equality != "hex":
                raise Declined(f"the collation groups texts of {name} that differ")
            return exp.cast(ref, "BINARY")  # MariaDB: its bytes, whatever the collation
        if self.rules.name == "sqlite" and logical_type in _SQLITE_KINDS:
            # CASE typeof(x) WHEN ... : a fifth faster in SQLite than IN (...).
            value = exp.cast(ref.copy(), _SQLITE_CASTS[logical_type])
            ifs = [
                exp.If(this=exp.Literal.string(k), true=ref.copy() if k == native else value)
                for k, native in _SQLITE_KINDS[logical_type]
            ]
            ref = exp.Case(this=exp.Anonymous(this="typeof", expressions=[ref]), ifs=ifs)
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
