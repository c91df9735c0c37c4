"""Writing a source's physical database as an SQLite file.

The embedded target: one file per source, replaced atomically, in the
physical schema ``physical`` derives from the source's mapping.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from accord.errors import ConfigError

from .physical import create_statements, physical_values, quote

if TYPE_CHECKING:
    import pyarrow as pa

    from accord.federation import Federation


def write_sqlite(
    federation: Federation, source_code: str, tables: dict[str, pa.Table], path: Path
) -> dict[str, int]:
    """(Re)creates the source's SQLite database at path from logical tables.

    Creates each served table under its physical name with its physical
    columns (TEXT for strings, codes and dates; INTEGER for BIGINT) and the
    indexes the system would have (FPS number, surname and given names, birth date,
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
