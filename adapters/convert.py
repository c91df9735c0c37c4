"""Turns rows in a system's physical representation into logical Arrow batches.

Each column is built as one Arrow array straight from the driver's values,
then translated with Arrow compute kernels: codes map to the federation's
values, text dates parse with the source's declared format, other values
cast to their logical type.

A stored value that does not fit the logical model (a code the mapping does
not know, an impossible date such as 09/31 or 02/29 of a common year, a
number out of range, text in a numeric column) becomes NULL and is counted
as bad, per column: one bad row must neither take the whole source down nor
travel anywhere as itself. Dates parse strictly: Arrow's ``strptime`` rolls
09/31 over to 10/01, so a parsed date stands only when it prints back as the
stored text, and any other stored text is judged by Python's
``datetime.strptime``, which refuses impossible dates. Those slow paths run
value by value, on the values that are not canonical only. The printing back
composes the date's fields with string kernels where the format has only
``%Y``, ``%m`` and ``%d`` (every declared one; from the ISO cast where they
come in ISO order): Arrow's ``strftime`` costs about a microsecond a value,
five times the whole rest of the check.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from accord.federation import LOGICAL_TYPES

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from accord.federation import ColumnMapping, LogicalTable, TableMapping

_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


@dataclass
class Converted:
    """One batch in the logical schema, and where its stored values did not fit."""

    batch: pa.RecordBatch
    #: column -> boolean mask of the rows whose stored value became NULL
    #: (only columns with at least one such value)
    bad: dict[str, pa.Array] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {column: pc.sum(mask).as_py() for column, mask in self.bad.items()}


def column_converters(
    table: LogicalTable, mapping: TableMapping, columns: Sequence[str]
) -> list[Callable[[pa.Array], pa.Array] | None]:
    """One array-to-array converter per column (None: the values already fit).

    A converter never raises on a stored value: what does not fit is NULL."""
    return [_converter(table.columns[c], mapping.columns.get(c)) for c in columns]


def _converter(
    logical_type: str, held: ColumnMapping | None
) -> Callable[[pa.Array], pa.Array] | None:
    if held is None:
        return None
    if held.codes:
        physical = pa.array(list(held.codes), pa.string())
        logical = pa.array(list(held.codes.values()), pa.string())

        def decode(array: pa.Array) -> pa.Array:
            index = pc.index_in(_as_text(array), value_set=physical)
            return pc.take(logical, index)  # an unknown code: a null index, a NULL value

        return decode
    if logical_type == "DATE":
        fmt = held.date_format
        if fmt is None:
            return _iso_or_native_dates

        def parse(array: pa.Array) -> pa.Array:
            return parse_dates(_as_text(array), fmt)

        return parse
    return None


def _as_text(array: pa.Array) -> pa.Array:
    if pa.types.is_string(array.type):
        return array
    try:
        return pc.cast(array, pa.string())
    except _ARROW_ERRORS:  # e.g. binary that is not UTF-8: none of it is text
        return pa.nulls(len(array), pa.string())


def parse_dates(text: pa.Array, fmt: str) -> pa.Array:
    """Text dates in ``fmt`` as date32, strictly: NULL where a value is no date."""
    stamps = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
    canonical = pc.equal(print_dates(stamps, fmt), text)
    dates = pc.cast(stamps, pa.date32())
    odd = pc.and_kleene(pc.is_valid(text), pc.invert(pc.fill_null(canonical, False)))
    if not pc.any(odd).as_py():
        return dates
    # Not as the format prints it (unpadded, rolled over, garbage): Python decides.
    flags = odd.to_pylist()
    values = text.to_pylist()
    judged = [_strict_date(v, fmt) if flag else None for v, flag in zip(values, flags, strict=True)]
    return pc.if_else(odd, pa.array(judged, pa.date32()), dates)


#: The strftime directives print_dates composes: the field and its zero-padded width.
_FIELDS: dict[str, tuple[Callable[[pa.Array], pa.Array], int]] = {
    "%Y": (pc.year, 4),
    "%m": (pc.month, 2),
    "%d": (pc.day, 2),
}


def print_dates(stamps: pa.Array, fmt: str) -> pa.Array:
    """``pc.strftime(stamps, format=fmt)``, composed from the fields where it can be."""
    parts = _format_parts(fmt)
    if parts is None:
        return pc.strftime(stamps, format=fmt)
    separator = _iso_separator(parts)
    if separator is not None:  # year, month, day in ISO order: the ISO cast, re-separated
        iso = pc.cast(pc.cast(stamps, pa.date32()), pa.string())
        return iso if separator == "-" else pc.replace_substring(iso, "-", separator)
    pieces: list[pa.Array | str] = []
    for part in parts:
        field = _FIELDS.get(part)
        if field is None:
            pieces.append(part)  # a literal separator, broadcast
            continue
        extract, width = field
        pieces.append(pc.utf8_lpad(pc.cast(extract(stamps), pa.string()), width, "0"))
    if not any(isinstance(p, pa.Array) for p in pieces):
        return pc.strftime(stamps, format=fmt)  # no field at all: nothing to compose
    return pc.binary_join_element_wise(*pieces, "")


def _iso_separator(parts: tuple[str, ...]) -> str | None:
    """The one separator of a ``%Y?%m?%d`` format ("" for none), else None."""
    if parts == ("%Y", "%m", "%d"):
        return ""
    if len(parts) == 5 and parts[::2] == ("%Y", "%m", "%d") and parts[1] == parts[3]:
        return parts[1]
    return None


@functools.cache
def _format_parts(fmt: str) -> tuple[str, ...] | None:
    """The format as literals and directives; None when a directive is not in _FIELDS."""
    parts = tuple(p for p in re.split(r"(%.)", fmt) if p)
    if any(p.startswith("%") and p not in _FIELDS for p in parts):
        return None
    return parts


def _strict_date(value: str, fmt: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(value, fmt).date()
    except ValueError:
        return None


def _iso_or_native_dates(array: pa.Array) -> pa.Array:
    """Dates stored as ISO text (SQLite) or as the database's own DATE type."""
    if pa.types.is_string(array.type):
        return parse_dates(array, "%Y-%m-%d")
    return pc.cast(array, pa.date32())


def physical_types(
    table: LogicalTable, mapping: TableMapping, columns: Sequence[str], native_dates: bool
) -> list[pa.DataType]:
    """The Arrow type each selected column is stored as in the source."""
    types = []
    for column in columns:
        held = mapping.columns.get(column)
        logical = LOGICAL_TYPES[table.columns[column]]
        if held is None or held.codes or held.date_format:
            types.append(pa.string() if held is not None else logical)
        elif table.columns[column] == "DATE" and not native_dates:
            types.append(pa.string())  # ISO text
        else:
            types.append(logical)
    return types


def _fit(
    stored: pa.Array, target: pa.DataType, convert: Callable[[pa.Array], pa.Array] | None
) -> pa.Array:
    """The stored values as ``target``; NULL for each one that does not fit."""
    try:
        array = convert(stored) if convert is not None else stored
        return array if array.type == target else pc.cast(array, target)
    except _ARROW_ERRORS:
        pass
    # The slow path, on a column that failed as a whole: one value at a time.
    fitted = []
    for i in range(len(stored)):
        one = stored.slice(i, 1)
        try:
            array = convert(one) if convert is not None else one
            fitted.append(array if array.type == target else pc.cast(array, target))
        except _ARROW_ERRORS:
            fitted.append(pa.nulls(1, target))
    return pa.concat_arrays(fitted) if fitted else pa.array([], target)


def to_logical(
    batch: pa.RecordBatch,
    schema: pa.Schema,
    converters: Sequence[Callable[[pa.Array], pa.Array] | None],
) -> Converted:
    """A batch of stored values as a batch of the logical schema, with the
    values that did not fit as NULL and marked in ``bad``."""
    arrays = []
    bad: dict[str, pa.Array] = {}
    for stored, target, convert in zip(batch.columns, schema, converters, strict=True):
        array = _fit(stored, target.type, convert)
        lost = pc.and_(pc.is_valid(stored), pc.is_null(array))
        if pc.any(lost).as_py():
            bad[target.name] = lost
        arrays.append(array)
    return Converted(pa.RecordBatch.from_arrays(arrays, schema=schema), bad)


def withheld(converted: Converted, guarded: Sequence[str]) -> pa.RecordBatch:
    """The batch without the rows where a ``guarded`` column's value did not fit."""
    masks = [converted.bad[c] for c in guarded if c in converted.bad]
    if not masks:
        return converted.batch
    drop = masks[0]
    for mask in masks[1:]:
        drop = pc.or_(drop, mask)
    return converted.batch.filter(pc.invert(drop))
