"""Turns rows in a system's physical representation into logical Arrow batches.

Codes are translated to the federation's values (an unmapped code passes
through unchanged, so nothing is silently lost), dates stored as text are
parsed with the source's declared format. A value that does not fit its
logical type is an error naming the source, table and column.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from accord.errors import AccordError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from accord.federation import ColumnMapping, LogicalTable, TableMapping


class ConversionError(AccordError):
    """A stored value does not fit the logical model."""


def column_converters(
    table: LogicalTable, mapping: TableMapping, columns: Sequence[str]
) -> list[Callable[[Any], Any] | None]:
    """One converter per column (None: take the value as stored)."""
    return [_converter(table.columns[c], mapping.columns.get(c)) for c in columns]


def _converter(logical_type: str, held: ColumnMapping | None) -> Callable[[Any], Any] | None:
    if held is None:
        return None
    if held.codes:
        codes = held.codes
        return lambda v: None if v is None else codes.get(str(v), str(v))
    if logical_type == "DATE":
        fmt = held.date_format
        if fmt is None:
            return _iso_date
        return lambda v: _format_date(v, fmt)
    if logical_type == "VARCHAR":
        return lambda v: None if v is None else str(v)
    return None


def _iso_date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _format_date(value: Any, fmt: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.datetime.strptime(str(value), fmt).date()


def rows_to_batch(
    rows: Sequence[tuple[Any, ...]],
    schema: pa.Schema,
    converters: Sequence[Callable[[Any], Any] | None],
    where: str,
) -> pa.RecordBatch:
    """Builds one batch column by column (no per-row dicts)."""
    arrays = []
    for index, (field, convert) in enumerate(zip(schema, converters, strict=True)):
        values = [row[index] for row in rows]
        try:
            if convert is not None:
                values = [convert(v) for v in values]
            arrays.append(pa.array(values, type=field.type))
        except (ValueError, TypeError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            bad = next((v for v in values if v is not None), None)
            raise ConversionError(
                f"{where}.{field.name}: stored value {bad!r} does not fit {field.type}: {exc}"
            ) from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
