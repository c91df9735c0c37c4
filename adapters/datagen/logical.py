"""The whole federation's synthetic data in the logical model (``generate``)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from accord.federation import LOGICAL_TYPES

from .common import EPOCH
from .people import Person, files_per_source
from .records import COLUMNS, SourceBuilder
from .victims import victim_cases

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from accord.federation import Federation, LogicalTable, Source, TableMapping

    from .records import Row


def generate(
    federation: Federation, *, seed: int = 7, scale: float = 0.01
) -> dict[str, dict[str, pa.Table]]:
    """Synthetic data for every source, in the logical model.

    Returns source code -> logical table name -> an Arrow table with exactly
    the logical schema (``LogicalTable.arrow_schema()``: all logical columns,
    in logical order). Columns the source does not hold are all-null; tables
    the source does not serve are absent. The same seed and scale give the
    same tables.
    """
    result: dict[str, dict[str, pa.Table]] = {}
    for source, builder in _built(federation, seed, scale):
        result[source.code] = {
            table: _to_arrow(
                builder.rows[table], table, federation.tables[table], source.tables[table]
            )
            for table in federation.tables
            if table in source.tables
        }
    return result


def person_truth(
    federation: Federation, *, seed: int = 7, scale: float = 0.01
) -> dict[tuple[str, str], str]:
    """Which files are one person, for ``generate`` with the same arguments:
    (source code, source_person_id) -> the person's FPS number, whether or
    not the file carries it (the minimal file of no one is absent)."""
    return {
        (source.code, pid): fps
        for source, builder in _built(federation, seed, scale)
        for pid, fps in builder.truth.items()
        if fps
    }


def _built(
    federation: Federation, seed: int, scale: float
) -> Iterator[tuple[Source, SourceBuilder]]:
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    files = files_per_source(federation, seed, scale)
    for source in federation.sources.values():
        entries = files[source.code]
        rng = random.Random(f"{seed}/{source.code}")  # noqa: S311 (synthetic data)
        builder = SourceBuilder(source, rng, len(entries) + 1)
        for person, status, exact in entries:
            builder.add(person, status, exact=exact)
        builder.add_minimal(
            Person("", "Ouellet", None, None, None, "X", source.jurisdiction, False)
        )
        if "victim_cases" in builder.rows and "sentences" in builder.rows:
            victims = random.Random(f"{seed}/{source.code}/victims")  # noqa: S311 (synthetic)
            builder.rows["victim_cases"] = victim_cases(builder.rows["sentences"], victims)
        yield source, builder


def _to_arrow(
    rows: list[Row], table: str, logical: LogicalTable, mapping: TableMapping
) -> pa.Table:
    names = COLUMNS.get(table, ())
    index = {name: i for i, name in enumerate(names)}
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    n = len(rows)
    arrays = []
    for name, logical_type in logical.columns.items():
        arrow_type = LOGICAL_TYPES[logical_type]
        if name not in mapping.columns or name not in index:
            arrays.append(pa.nulls(n, arrow_type))
            continue
        values = columns[index[name]]
        if logical_type == "DATE":
            days = [None if v is None else v - EPOCH for v in values]
            arrays.append(pa.array(days, pa.int32()).cast(pa.date32()))
        else:
            arrays.append(pa.array(list(values), arrow_type))
    return pa.Table.from_arrays(arrays, schema=logical.arrow_schema())
