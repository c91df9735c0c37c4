"""Writing a source's physical database.

Logical values are written into each source's own physical schema: physical
table and column names, codes and text date formats all come from the
source's mapping in the federation file.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from accord.errors import ConfigError

from .common import EPOCH
from .logical import generate

if TYPE_CHECKING:
    from accord.federation import ColumnMapping, Federation, LogicalTable, Source, TableMapping


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
    return [create], indexes, physical


def write_sqlite(
    federation: Federation, source_code: str, tables: dict[str, pa.Table], path: Path
) -> dict[str, int]:
    """(Re)creates the source's SQLite database at path from logical tables.

    Creates each served table under its physical name with its physical
    columns (TEXT for strings, codes and dates; INTEGER for BIGINT) and the
    indexes the system would have (FPS number, surname and given names,
    person id of child tables); converts logical values back to the
    system's codes and date formats; loads each table in one transaction.
    An existing file is replaced atomically. Returns rows per logical table.
    """
    source = federation.source(source_code)
    path = Path(path)
    for table in tables:
        if table not in source.tables:
            raise ConfigError(f"source {source.code} does not serve table {table!r}")
    # SQLite creates the temporary file itself (usual permissions under the
    # umask); the random name keeps concurrent writers apart.
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    counts: dict[str, int] = {}
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("BEGIN")
            for name, logical in federation.tables.items():
                if name not in source.tables:
                    continue
                mapping = source.tables[name]
                creates, indexes, physical = create_statements(source, logical, mapping)
                for statement in creates:
                    conn.execute(statement)
                data = tables.get(name)
                if data is not None and data.num_rows:
                    held = [c for c in logical.columns if c in mapping.columns]
                    columns = [
                        physical_values(
                            data.column(c),
                            logical.columns[c],
                            mapping.columns[c],
                            f"source {source.code}.{name}.{c}",
                        )
                        for c in held
                    ]
                    marks = ", ".join("?" * len(physical))
                    conn.executemany(
                        f"INSERT INTO {quote(mapping.physical_table)} "
                        f"({', '.join(quote(p) for p in physical)}) VALUES ({marks})",
                        zip(*columns, strict=True),
                    )
                for statement in indexes:
                    conn.execute(statement)
                counts[name] = 0 if data is None else data.num_rows
            conn.execute("COMMIT")
            conn.execute("ANALYZE")
        finally:
            conn.close()
        for leftover in ("-journal", "-wal", "-shm"):  # never replay another file's log
            Path(f"{path}{leftover}").unlink(missing_ok=True)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return counts


def write_federation_data(
    federation: Federation, workdir: Path, *, seed: int = 7, scale: float = 0.01
) -> dict[str, dict[str, int]]:
    """Generates the data once and writes every source's database: SQLite
    files at workdir / backend.path, server databases at the source's DSN
    (created if missing). Returns source -> logical table -> rows."""
    from adapters.datagen.server_writer import create_database, write_mysql, write_postgres

    data = generate(federation, seed=seed, scale=scale)
    counts: dict[str, dict[str, int]] = {}
    for code, source in federation.sources.items():
        if source.backend.kind == "sqlite" and source.backend.path:
            path = Path(workdir) / source.backend.path
            path.parent.mkdir(parents=True, exist_ok=True)
            counts[code] = write_sqlite(federation, code, data[code], path)
            continue
        dsn = source.backend.resolve_dsn()
        create_database(dsn)
        write = write_postgres if source.backend.kind == "postgresql" else write_mysql
        counts[code] = write(federation, code, data[code], dsn)
    return counts
