"""What every target of the synthetic data shares: the physical tables.

A source's data is written in its own physical schema: physical table and
column names, codes and text date formats all come from the source's
mapping in the federation file. This module turns a logical table and its
mapping into that physical form once for every target (``sqlite_writer``,
``postgres_writer``, ``mysql_writer``): identifier quoting, physical values,
the CREATE and index statements (SQLite's column types; the index
statements quote identifiers with double quotes, as PostgreSQL does and
MariaDB does in ANSI_QUOTES mode), and for the server targets the table
plans with each server's column types, checked so no value is truncated.
It imports none of the targets.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from accord.errors import ConfigError

from .common import EPOCH

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from accord.federation import ColumnMapping, Federation, LogicalTable, Source, TableMapping

_CHUNK_ROWS = 50_000  # rows encoded at a time
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_SQLITE_TYPES = {
    "VARCHAR": "TEXT",
    "DATE": "TEXT",
    "BIGINT": "INTEGER",
    "DOUBLE": "REAL",
    "BOOLEAN": "INTEGER",
}


def quote(identifier: str) -> str:
    return f'"{identifier}"'


def physical_values(
    column: pa.ChunkedArray, logical_type: str, held: ColumnMapping, where: str
) -> list[Any]:
    """One logical column converted to what the source system stores."""
    if held.codes:
        reverse = held.reverse_codes
        values = column.to_pylist()
        try:
            return [None if v is None else reverse[v] for v in values]
        except KeyError as exc:
            raise ConfigError(
                f"{where}: the mapping has no physical code for logical value {exc.args[0]!r}"
            ) from None
    if logical_type == "DATE":
        fmt = held.date_format
        cache: dict[int, str] = {}
        out: list[str | None] = []
        for day in column.cast(pa.int32()).to_pylist():
            if day is None:
                out.append(None)
                continue
            text = cache.get(day)
            if text is None:
                date = dt.date.fromordinal(day + EPOCH)
                text = date.strftime(fmt) if fmt else date.isoformat()
                cache[day] = text
            out.append(text)
        return out
    if logical_type == "BOOLEAN":
        return [None if v is None else int(v) for v in column.to_pylist()]
    return list(column.to_pylist())


def create_statements(
    source: Source, logical: LogicalTable, mapping: TableMapping
) -> tuple[list[str], list[str], list[str]]:
    """(CREATE TABLE, index statements, physical column names) for one table."""
    held = [c for c in logical.columns if c in mapping.columns]
    physical = [mapping.columns[c].physical for c in held]
    where = f"source {source.code}.{logical.name}"
    if len({p.upper() for p in physical}) != len(physical):
        raise ConfigError(f"{where}: two logical columns map to one physical column")
    table = mapping.physical_table
    person_id = mapping.columns.get("source_person_id")
    is_person_table = logical.name == "offenders"
    defs = []
    for logical_name, column in zip(held, physical, strict=True):
        sql_type = _SQLITE_TYPES[logical.columns[logical_name]]
        extra = (
            " NOT NULL PRIMARY KEY"
            if is_person_table and logical_name == ("source_person_id")
            else ""
        )
        defs.append(f"{quote(column)} {sql_type}{extra}")
    create = f"CREATE TABLE {quote(table)} (\n  " + ",\n  ".join(defs) + "\n)"
    indexes: list[str] = []

    def index(suffix: str, columns: list[ColumnMapping | None]) -> None:
        present = [c.physical for c in columns if c is not None]
        if present and len(present) == len(columns):
            indexes.append(
                f"CREATE INDEX {quote(f'{table}_{suffix}_IX')} ON {quote(table)} "
                f"({', '.join(quote(c) for c in present)})"
            )

    fps = mapping.columns.get(logical.person_key or "fps_number")
    index("FPS", [fps])
    for surname, given in (("surname", "given_names"), ("alias_surname", "alias_given_names")):
        if surname in mapping.columns:
            index(
                "NAME",
                [mapping.columns[surname], mapping.columns.get(given)]
                if given in mapping.columns
                else [mapping.columns[surname]],
            )
    if person_id is not None and not is_person_table:
        index("PERSON", [person_id])
    if is_person_table and "birth_date" in mapping.columns:
        # A history's name search and its links without the FPS number look
        # files up by birth date.
        index("BIRTH", [mapping.columns["birth_date"]])
    return [create], indexes, physical


@dataclass(frozen=True)
class Column:
    logical: str
    physical: str
    logical_type: str
    sql_type: str
    max_chars: int | None = None  # VARCHAR(n): longest value, in characters
    max_bytes: int | None = None  # TEXT: longest value, in UTF-8 bytes
    finite_only: bool = False  # no NaN or infinity (MariaDB DOUBLE)


@dataclass(frozen=True)
class TablePlan:
    name: str  # logical table
    table: str  # physical table
    columns: list[Column]
    create: str
    indexes: list[str]
    primary_key: str | None  # physical column


@dataclass(frozen=True)
class ServerSchema:
    """How one database server's tables differ: column types, key, options."""

    #: (logical type, logical column, coded, date format) -> (SQL type,
    #: character limit, byte limit) of one physical column
    column_type: Callable[[str, str, bool, str | None], tuple[str, int | None, int | None]]
    primary_key_inline: bool  # declared in CREATE TABLE, else added after the load
    table_options: str = ""  # after CREATE TABLE (...)
    finite_doubles: bool = False  # DOUBLE holds no NaN or infinity


def _plan(
    schema: ServerSchema, source: Source, logical: LogicalTable, mapping: TableMapping
) -> TablePlan:
    # The index statements (and the checks on the mapping) are SQLite's: they
    # quote identifiers with double quotes, as PostgreSQL does and MariaDB
    # does in ANSI_QUOTES mode, which write_mysql sets for its session.
    _, indexes, _ = create_statements(source, logical, mapping)
    columns = []
    for name, logical_type in logical.columns.items():
        held = mapping.columns.get(name)
        if held is None:
            continue
        sql_type, max_chars, max_bytes = schema.column_type(
            logical_type, name, bool(held.codes), held.date_format
        )
        columns.append(
            Column(
                name,
                held.physical,
                logical_type,
                sql_type,
                max_chars,
                max_bytes,
                finite_only=schema.finite_doubles and logical_type == "DOUBLE",
            )
        )
    primary_key = None
    if logical.name == "offenders" and "source_person_id" in mapping.columns:
        primary_key = mapping.columns["source_person_id"].physical
    defs = []
    for column in columns:
        extra = ""
        if column.physical == primary_key:
            # MariaDB clusters the table on its primary key, so it is declared
            # up front; PostgreSQL builds it after the load (write_postgres).
            extra = " NOT NULL PRIMARY KEY" if schema.primary_key_inline else " NOT NULL"
        defs.append(f"{quote(column.physical)} {column.sql_type}{extra}")
    table = mapping.physical_table
    create = f"CREATE TABLE {quote(table)} (\n  " + ",\n  ".join(defs) + "\n)"
    if schema.table_options:
        create += f" {schema.table_options}"
    return TablePlan(logical.name, table, columns, create, indexes, primary_key)


def table_plans(
    federation: Federation, source: Source, tables: dict[str, pa.Table], schema: ServerSchema
) -> list[TablePlan]:
    """The plan of every table the source serves, in the federation's order."""
    for table in tables:
        if table not in source.tables:
            raise ConfigError(f"source {source.code} does not serve table {table!r}")
    return [
        _plan(schema, source, logical, source.tables[name])
        for name, logical in federation.tables.items()
        if name in source.tables
    ]


def physical_text(source: Source, plan: TablePlan, data: pa.Table | None) -> list[pa.Array]:
    """The table's physical values as text, column by column, checked to fit
    their columns; [] when there are no rows."""
    if data is None or not data.num_rows:
        return []
    out = []
    for column in plan.columns:
        where = f"source {source.code}.{plan.name}.{column.logical}"
        held = source.tables[plan.name].columns[column.logical]
        text = _text(physical_values(data.column(column.logical), column.logical_type, held, where))
        _check_fits(text, column, where, plan.table)
        out.append(text)
    return out


def _text(values: list[Any]) -> pa.Array:
    """Physical values (str, int, float or None) as an Arrow string array."""
    array = pa.array(values)
    return array if array.type == pa.string() else array.cast(pa.string())


def _check_fits(text: pa.Array, column: Column, where: str, table: str) -> None:
    """Raises rather than let the server truncate (or refuse) a value."""
    target = f"column {table}.{column.physical} {column.sql_type}"
    if column.max_chars is not None:
        longest = pc.max(pc.utf8_length(text)).as_py() or 0
        if longest > column.max_chars:
            raise ValueError(f"{where}: a value of {longest} characters does not fit {target}")
    if column.max_bytes is not None:
        longest = pc.max(pc.binary_length(text)).as_py() or 0
        if longest > column.max_bytes:
            raise ValueError(
                f"{where}: a value of {longest} bytes does not fit {target} "
                f"({column.max_bytes} bytes)"
            )
    if column.finite_only and pc.any(pc.is_in(text, pa.array(["nan", "inf", "-inf"]))).as_py():
        raise ValueError(f"{where}: {target} cannot hold NaN or infinity")


def column_list(plan: TablePlan) -> str:
    return ", ".join(quote(c.physical) for c in plan.columns)


def replace_text(array: pa.Array, pairs: tuple[tuple[str, str], ...]) -> pa.Array:
    """Replaces substrings in order; a pass runs only if the text holds its
    substring (a byte search over the whole column is far cheaper)."""
    data = array.buffers()[2]
    raw = b"" if data is None else data.to_pybytes()
    for old, new in pairs:
        if old.encode() in raw:
            array = pc.replace_substring(array, old, new)
    return array


def text_rows(
    columns: list[pa.Array],
    separator: str,
    row_prefix: str,
    row_suffix: str,
    null: str | None = None,
) -> Iterator[tuple[memoryview, memoryview]]:
    """Rows of text: prefix, the columns' values joined by separator, suffix.

    A chunk of rows at a time, each as (bytes of the rows back to back, the
    offset of each row in them and the end). Nulls become ``null``.
    """
    for start in range(0, len(columns[0]), _CHUNK_ROWS):
        parts = [c.slice(start, _CHUNK_ROWS) for c in columns]
        if null is None:
            joined = pc.binary_join_element_wise(*parts, separator)
        else:
            joined = pc.binary_join_element_wise(
                *parts, separator, null_handling="replace", null_replacement=null
            )
        rows = pc.binary_join_element_wise(row_prefix, joined, row_suffix, "")
        _, offsets, data = rows.buffers()
        assert rows.null_count == 0
        first = rows.offset
        yield memoryview(data), memoryview(offsets).cast("i")[first : first + len(rows) + 1]


def plain_name(name: str, what: str) -> str:
    """``name`` when it is a plain SQL identifier (no quoting needed anywhere)."""
    if not _PLAIN_NAME.match(name):
        raise ConfigError(f"{what} {name!r} is not a plain SQL identifier")
    return name


def database_name(name: str) -> str:
    """The target database's name, checked to be a plain SQL identifier."""
    # (the target URL may hold a password: not in the message)
    return plain_name(name, "target database name")
