"""An independent reader for the data tests: stored rows + the mapping ->
the logical table, written apart from the adapters' own conversion code."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from accord.federation import Federation


def rows_to_logical(
    federation: Federation,
    code: str,
    table: str,
    held: list[str],
    rows: list[tuple[Any, ...]],
    *,
    native_dates: bool,
) -> pa.Table:
    """``held`` names the logical columns of ``rows``, in order. Unformatted
    dates are ISO text (SQLite) or, with ``native_dates``, real dates."""
    logical = federation.tables[table]
    mapping = federation.sources[code].tables[table]
    arrays = []
    for name, type_name in logical.columns.items():
        arrow_type = logical.arrow_schema().field(name).type
        if name not in mapping.columns:
            arrays.append(pa.nulls(len(rows), arrow_type))
            continue
        col = mapping.columns[name]
        raw = [row[held.index(name)] for row in rows]
        values: list[object]
        if col.codes:
            values = [None if v is None else col.codes[v] for v in raw]
        elif type_name == "DATE" and col.date_format:
            values = [
                None if v is None else dt.datetime.strptime(v, col.date_format).date() for v in raw
            ]
        elif type_name == "DATE" and native_dates:
            assert all(v is None or type(v) is dt.date for v in raw), (code, table, name)
            values = raw
        elif type_name == "DATE":
            values = [None if v is None else dt.date.fromisoformat(v) for v in raw]
        else:
            values = raw
        arrays.append(pa.array(values, arrow_type))
    return pa.Table.from_arrays(arrays, schema=logical.arrow_schema())
