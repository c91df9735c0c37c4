"""Disclosure control for aggregate-only roles: what a released cell may say.

Threshold suppression alone falls to differencing (two broad cells that
differ by a small one), to HAVING probes and to counting what was dropped.
So an answer is released as follows, the way Statistics Canada publishes
its tables (random rounding to base 5 with small cells suppressed):

* **Suppression.** An output group covering fewer than ``min_group_size``
  distinct persons of any table it reads is withheld, an empty one too:
  an answer never tells an empty cell from a small one (no error, no row,
  and the trailer does not count what was withheld).
* **Random rounding, the same for the same cell.** Every released count is
  rounded to a multiple of the role's ``rounding_base`` and every sum to a
  multiple of its measure's base: up with probability r/b (r the
  remainder), else down, so a value is never off by b or more and is right
  on average. The draw is HMAC-SHA256 under the role's secret of what the
  cell *is*: the set of persons it covers (a digest computed with the
  answer), the kind of statistic, its base and its true value. The same
  cell asked again, or phrased otherwise (reordered or redundant filters,
  another alias, the other side of a join covering the same persons), gets
  the same answer, so repeating a query gains nothing.
* **Averages** are the released sum over the released count (those the
  same query would give for SUM and COUNT of the column), never the exact
  ratio.

What an analyst can expect (b the base, k the threshold): a count or sum
within b-1 of the truth; a difference of two released values within
2(b-1) of the difference of the truths, which bounds what differencing
recovers of a withheld cell; a cell of fewer than k persons not shown.
What it does not promise: many *different* cells that each differ by the
same withheld cell give independent draws, and averaging many such
differences narrows the withheld value (``bench/disclosure_error.py``
measures it: about 100 distinct pairs recover a count of 1..4 nine times in
ten). Bounding that needs a privacy budget: a role with ``privacy:`` adds
noise before this rounding and keeps one per partner
(``broker.policy.privacy``, ``broker.budget``).

The broker adds the hidden columns at plan time (:func:`add_hidden_columns`)
and releases the merged answer (:func:`release`); both follow one
:class:`ReleaseSpec`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from broker.policy.rewrite import PERSON_ID_COLUMN

if TYPE_CHECKING:
    from collections.abc import Sequence

    from broker.policy.model import Privacy

#: Prefix of the hidden output columns carrying each group's distinct-person
#: count, one per table joined (``__accord_persons_1``, ...).
PERSON_COUNT_PREFIX = "__accord_persons"
#: Prefix of the hidden digest of each table's persons in the group.
CELL_KEY_PREFIX = "__accord_cell"
#: Prefix of the hidden SUM and COUNT behind each released average.
AVERAGE_PREFIX = "__accord_avg"


@dataclass(frozen=True)
class Output:
    """One column of the caller's answer: a grouped dimension, passed
    through, or a statistic rounded to ``base``."""

    kind: str  # "dimension", "count", "sum" or "avg"
    base: int = 1  # count and sum: their base; avg: its sum's base
    hidden: tuple[int, int] = (0, 0)  # avg: positions of its hidden SUM and COUNT
    # differentially private roles: the most one person changes this
    # statistic's column (count, sum; avg: its sum), and an average's count
    sensitivity: int = 0
    count_sensitivity: int = 0
    # the statistic as SQL (avg: its SUM and its COUNT): one statistic asked
    # twice in a query, or behind an average, is one cell of one draw
    slots: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReleaseSpec:
    """How to release one query's merged answer."""

    outputs: tuple[Output, ...]  # one per caller's projection, in order
    min_group_size: int
    count_base: int
    persons: tuple[int, ...] = ()  # positions of the hidden person counts
    cells: tuple[int, ...] = ()  # positions of the hidden person digests

    def describe(self, privacy: Privacy | None = None) -> str:
        """The method and its parameters, for the audit record and Explain."""
        sums = sorted({o.base for o in self.outputs if o.kind in ("sum", "avg")})
        text = (
            f"groups under {self.min_group_size} persons withheld; "
            f"counts rounded to base {self.count_base}"
        )
        text += f"; sums rounded to base {', '.join(map(str, sums))}" if sums else ""
        if privacy is not None:
            text = (
                f"discrete Laplace noise (OpenDP) for epsilon {privacy.epsilon_per_query:g} "
                f"a query, {privacy.epsilon_per_year:g} a year; then " + text
            )
        return text


def add_hidden_columns(
    tree: exp.Select, outputs: Sequence[Output], min_group_size: int, count_base: int
) -> ReleaseSpec:
    """Appends the hidden columns the release needs to ``tree`` (in place):
    per table read, ``COUNT(DISTINCT person)`` (in a join each side's persons
    must reach the threshold) and a digest of its set of persons; per average,
    its SUM and COUNT. ``outputs`` describes the caller's projections."""
    tables = [tree.args["from_"].this, *(j.this for j in tree.args.get("joins") or [])]
    position = len(tree.expressions)
    persons, cells = [], []
    for number, table in enumerate(tables, start=1):
        person = exp.column(PERSON_ID_COLUMN, table=table.alias_or_name, quoted=True)
        count = exp.Count(this=exp.Distinct(expressions=[person]))
        tree.select(exp.alias_(count, f"{PERSON_COUNT_PREFIX}_{number}", quoted=True), copy=False)
        tree.select(
            exp.alias_(_digest(person), f"{CELL_KEY_PREFIX}_{number}", quoted=True), copy=False
        )
        persons.append(position)
        cells.append(position + 1)
        position += 2
    released = list(outputs)
    for index, output in enumerate(outputs):
        if output.kind != "avg":
            continue
        average = tree.expressions[index].unalias()
        assert isinstance(average, exp.Avg)
        argument = average.this
        total, count = exp.Sum(this=argument.copy()), exp.Count(this=argument.copy())
        tree.select(exp.alias_(total, f"{AVERAGE_PREFIX}_sum_{index}", quoted=True), copy=False)
        tree.select(exp.alias_(count, f"{AVERAGE_PREFIX}_count_{index}", quoted=True), copy=False)
        released[index] = replace(output, hidden=(position, position + 1))
        position += 2
    return ReleaseSpec(tuple(released), min_group_size, count_base, tuple(persons), tuple(cells))


def _digest(person: exp.Column) -> exp.Expr:
    """XOR of the 64-bit MD5 prefix of each distinct person: the same set of
    persons gives the same digest whatever query selected it (MD5 here is a
    stable fingerprint, not a secret: the secret is in the draw)."""
    md5 = exp.Anonymous(this="md5_number", expressions=[person.copy()])
    shifted = exp.BitwiseRightShift(this=md5, expression=exp.Literal.number(64))
    prefix = exp.cast(shifted, exp.DataType.build("UBIGINT", dialect="duckdb"))
    return exp.Anonymous(this="bit_xor", expressions=[exp.Distinct(expressions=[prefix])])


def release_key(secret: bytes, role: str) -> bytes:
    """The role's key for rounding draws: one per role, so two partners of
    the role see the same numbers and learn nothing more together."""
    return hmac.new(secret, f"accord disclosure v1|{role}".encode(), hashlib.sha256).digest()


def release(table: pa.Table, spec: ReleaseSpec, key: bytes) -> tuple[pa.Table, int]:
    """The answer the caller may see: small groups withheld, every statistic
    rounded, hidden columns gone; returns (released, groups withheld)."""
    values = [column.to_pylist() for column in table.columns]
    rows: list[list[Any]] = []
    for r in range(table.num_rows):
        if any((values[i][r] or 0) < spec.min_group_size for i in spec.persons):
            continue
        cell = sorted({int(values[i][r] or 0) for i in spec.cells})
        rows.append(
            [_released(spec, o, cell, values, i, r, key) for i, o in enumerate(spec.outputs)]
        )
    fields = [_field(table.schema.field(i), o) for i, o in enumerate(spec.outputs)]
    columns = [pa.array([row[i] for row in rows], f.type) for i, f in enumerate(fields)]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields)), table.num_rows - len(rows)


def _released(
    spec: ReleaseSpec,
    output: Output,
    cell: list[int],
    values: list[list[Any]],
    index: int,
    row: int,
    key: bytes,
) -> Any:
    value = values[index][row]
    if output.kind == "dimension":
        return value
    if output.kind == "count":
        return rounded(value, spec.count_base, draw(key, cell, "count", spec.count_base, value))
    if output.kind == "sum":
        return rounded(value, output.base, draw(key, cell, "sum", output.base, value))
    total, count = (values[i][row] for i in output.hidden)
    total = rounded(total, output.base, draw(key, cell, "sum", output.base, total))
    count = rounded(count, spec.count_base, draw(key, cell, "count", spec.count_base, count))
    return None if total is None or not count else float(total) / count


def _field(field: pa.Field, output: Output) -> pa.Field:
    if output.kind == "dimension":
        return field
    if output.kind == "count":
        return pa.field(field.name, pa.int64())
    if output.kind == "sum" and (
        pa.types.is_integer(field.type) or pa.types.is_decimal(field.type)
    ):
        return pa.field(field.name, pa.int64())
    return pa.field(field.name, pa.float64())


def draw(key: bytes, cell: Sequence[int], kind: str, base: int, value: Any) -> float:
    """A number in [0, 1) fixed by the cell and its true value, unpredictable
    without ``key``."""
    message = f"{','.join(map(str, cell))}|{kind}|{base}|{_canonical(value)}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _canonical(value: Any) -> str:
    """One text per number, whatever type the merge gave it."""
    if isinstance(value, (Decimal, float)) and value == int(value):
        return str(int(value))
    return repr(float(value)) if isinstance(value, (Decimal, float)) else str(value)


def rounded(value: Any, base: int, u: float) -> Any:
    """``value`` to a multiple of ``base``: up with probability (remainder /
    base), decided by ``u`` in [0, 1); a multiple stays as it is.

    >>> rounded(12, 5, 0.3), rounded(12, 5, 0.5), rounded(10, 5, 0.99)
    (15, 10, 10)
    """
    if value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        quotient = math.floor(value / base)
        return float((quotient + (u < value / base - quotient)) * base)
    quotient, remainder = divmod(int(value), base)
    return (quotient + (u * base < remainder)) * base
