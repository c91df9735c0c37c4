"""Partial aggregates: what a Scan may ask a source to aggregate, and the
Arrow schema of the answer, the one definition broker and adapters share.

A partial aggregate groups a scan's matching rows on logical columns and
computes, per group, ``rows`` (COUNT(*)) and one column per call: COUNT,
SUM, MIN or MAX of a logical column, or SUM of ``+ - *`` over DOUBLE
columns and numeric literals (TPC-H's ``l_extendedprice * (1 - l_discount)``).
Division is left out: its integer and zero semantics differ between
databases. The broker combines the sources' partials (``broker.pushdown.
aggregates``); an adapter computes one only where it is exact
(``adapters.aggregate``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from accord.errors import InvalidQuery
from accord.federation import LOGICAL_TYPES

if TYPE_CHECKING:
    from accord.federation import LogicalTable
    from accord.v1 import adapter_pb2

FUNCTIONS = frozenset({"count", "sum", "min", "max"})
ROWS = "rows"
#: Arithmetic a SUM may take, with its operands.
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul)
#: A numeric literal as spliced into SQL: digits, at most one point.
NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
#: SUM of a BIGINT: exact in every database (DuckDB's HUGEINT, as Arrow's).
WIDE_INTEGER = pa.decimal128(38, 0)


def call_name(i: int) -> str:
    return f"a{i + 1}"


def parse_argument(text: str, table: LogicalTable, function: str) -> exp.Expr:
    """The argument of one call, checked: a column of ``table``, or for SUM
    arithmetic over DOUBLE columns and numeric literals. InvalidQuery else."""
    if function not in FUNCTIONS:
        raise InvalidQuery(f"partial aggregate function {function!r} is not one of {FUNCTIONS}")
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
    except (SqlglotError, RecursionError) as exc:
        raise InvalidQuery(f"partial aggregate argument {text!r} does not parse") from exc
    if isinstance(tree, exp.Column) and not tree.table:
        if tree.name not in table.columns:
            raise InvalidQuery(f"table {table.name} has no column {tree.name!r}")
        return tree
    if function != "sum":
        raise InvalidQuery(f"{function} takes one column, not {text!r}")
    for node in tree.walk():
        if isinstance(node, exp.Column):
            if node.table or table.columns.get(node.name) != "DOUBLE":
                raise InvalidQuery(f"arithmetic of a partial sum is over DOUBLE columns: {text!r}")
        elif isinstance(node, exp.Literal):
            if node.is_string or not NUMBER.fullmatch(node.this):
                raise InvalidQuery(f"a partial sum's literal must be a plain number: {text!r}")
        elif not isinstance(node, (*_ARITHMETIC, exp.Paren, exp.Identifier)):
            raise InvalidQuery(f"a partial sum takes + - * only: {text!r}")
    return tree


def argument_type(tree: exp.Expr, table: LogicalTable) -> str:
    """The logical type of an argument (arithmetic is over DOUBLE)."""
    return table.columns[tree.name] if isinstance(tree, exp.Column) else "DOUBLE"


def result_type(function: str, logical_type: str) -> pa.DataType:
    if function == "count":
        return pa.int64()
    if function == "sum":
        if logical_type == "BIGINT":
            return WIDE_INTEGER
        if logical_type != "DOUBLE":
            raise InvalidQuery(f"a partial sum is of BIGINT or DOUBLE, not {logical_type}")
        return pa.float64()
    return LOGICAL_TYPES[logical_type]


def partial_schema(table: LogicalTable, spec: adapter_pb2.PartialAggregate) -> pa.Schema:
    """The answer's schema: groups, ``rows``, ``a1``... (InvalidQuery for a bad spec)."""
    fields = []
    for column in spec.group_by:
        if column not in table.columns:
            raise InvalidQuery(f"table {table.name} has no column {column!r}")
        fields.append(pa.field(column, LOGICAL_TYPES[table.columns[column]]))
    if len(set(spec.group_by)) != len(spec.group_by):
        raise InvalidQuery("a partial aggregate groups on each column once")
    fields.append(pa.field(ROWS, pa.int64()))
    for i, call in enumerate(spec.calls):
        tree = parse_argument(call.argument, table, call.function)
        fields.append(
            pa.field(call_name(i), result_type(call.function, argument_type(tree, table)))
        )
    return pa.schema(fields)


def columns_used(table: LogicalTable, spec: adapter_pb2.PartialAggregate) -> list[str]:
    """The logical columns the aggregate reads, in the table's order."""
    named = set(spec.group_by)
    for call in spec.calls:
        tree = parse_argument(call.argument, table, call.function)
        named.update(c.name for c in tree.find_all(exp.Column))
    return [c for c in table.columns if c in named]


def impossible(batch: pa.RecordBatch, spec: adapter_pb2.PartialAggregate) -> str | None:
    """What no database could have computed in ``batch`` (a negative or
    missing row count, a count outside 0..rows), or None: a source's
    partial is checked as its rows are, so it cannot inflate an answer."""
    rows = batch.column(ROWS)
    if rows.null_count or (len(rows) and pc.min(rows).as_py() < 0):
        return "a row count that is negative or missing"
    for i, call in enumerate(spec.calls):
        if call.function != "count":
            continue
        counted = batch.column(call_name(i))
        outside = pc.or_(pc.less(counted, 0), pc.greater(counted, rows))
        if counted.null_count or pc.any(outside).as_py():
            return "a count that is not between 0 and its group's rows"
    return None
