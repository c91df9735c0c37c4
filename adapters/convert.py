"""Turns rows in a system's physical representation into logical Arrow batches.

Each column is built as one Arrow array straight from the driver's values,
then translated with Arrow compute kernels, never value by value in Python:
codes map to the federation's values (an unmapped code passes through
unchanged, so nothing is silently lost), text dates parse with the source's
declared format. A value that does not fit its logical type is an error
naming the source, table and column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from accord.errors import ConversionError
from accord.federation import LOGICAL_TYPES

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from accord.federation import ColumnMapping, LogicalTable, TableMapping


def column_converters(
    table: LogicalTable, mapping: TableMapping, columns: Sequence[str]
) -> list[Callable[[pa.Array], pa.Array] | None]:
    """One array-to-array converter per column (None: the values already fit)."""
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
            text = _as_text(array)
            index = pc.index_in(text, value_set=physical)
            return pc.if_else(pc.is_null(index), text, pc.take(logical, index))

        return decode
    if logical_type == "DATE":
        fmt = held.date_format
        if fmt is None:
            return _iso_or_native_dates

        def parse(array: pa.Array) -> pa.Array:
            stamps = pc.strptime(_as_text(array), format=fmt, unit="s")
            return pc.cast(stamps, pa.date32())

        return parse
    return None


def _as_text(array: pa.Array) -> pa.Array:
    return array if pa.types.is_string(array.type) else pc.cast(array, pa.string())


def _iso_or_native_dates(array: pa.Array) -> pa.Array:
    """Dates stored as ISO text (SQLite) or as the database's own DATE type."""
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


def _first_bad(
    stored: pa.Array, target: pa.DataType, convert: Callable[[pa.Array], pa.Array] | None
) -> Any:
    """The first stored value that fails (the slow path, on errors only)."""
    for value in stored.to_pylist():
        if value is None:
            continue
        try:
            one = pa.array([value], stored.type)
            pc.cast(convert(one) if convert is not None else one, target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return value
    return None


def to_logical(
    batch: pa.RecordBatch,
    schema: pa.Schema,
    converters: Sequence[Callable[[pa.Array], pa.Array] | None],
    where: str,
) -> pa.RecordBatch:
    """A batch of stored values as a batch of the logical schema."""
    arrays = []
    for stored, field, convert in zip(batch.columns, schema, converters, strict=True):
        try:
            array = convert(stored) if convert is not None else stored
            arrays.append(array if array.type == field.type else pc.cast(array, field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            bad = _first_bad(stored, field.type, convert)
            raise ConversionError(
                f"{where}.{field.name}: stored value {bad!r} does not fit {field.type}: {exc}"
            ) from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
