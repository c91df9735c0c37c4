"""Writing a source's physical database into PostgreSQL.

The server counterpart of ``sqlite_writer``: the same physical table and
column names, codes, text date formats and indexes (``physical``), with
PostgreSQL's own column types. Unlike SQLite, a logical DATE column without
a ``date_format`` is a native ``DATE`` column. Rows are loaded with COPY.

Loading is idempotent: a source's tables are dropped and recreated, so
loading the same data twice leaves the same rows once.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from adapters.backends.dsn import postgres_connect_args

from .physical import (
    ServerSchema,
    column_list,
    database_name,
    physical_text,
    plain_name,
    quote,
    replace_text,
    table_plans,
    text_rows,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

    from accord.federation import Federation

_TYPES = {"DATE": "DATE", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE PRECISION", "BOOLEAN": "BOOLEAN"}


def _column_type(
    logical_type: str, logical: str, coded: bool, date_format: str | None
) -> tuple[str, int | None, int | None]:
    """TEXT for strings, codes and text dates; otherwise the logical type's own."""
    if logical_type == "VARCHAR" or (logical_type == "DATE" and date_format is not None):
        return "TEXT", None, None
    return _TYPES[logical_type], None, None


#: PostgreSQL builds the primary key after the load (write_postgres).
SCHEMA = ServerSchema(_column_type, primary_key_inline=False)


#: COPY text format: backslash escapes, tab between columns, \\N for NULL.
_COPY_ESCAPES = (("\\", "\\\\"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def _copy_data(columns: list[pa.Array]) -> Iterator[memoryview]:
    """COPY ... FROM STDIN text-format data for the columns, a chunk at a time."""
    escaped = [replace_text(c, _COPY_ESCAPES) for c in columns]
    for data, offsets in text_rows(escaped, "\t", "", "\n", null="\\N"):
        yield data[offsets[0] : offsets[-1]]


def write_postgres(
    federation: Federation,
    source_code: str,
    tables: dict[str, pa.Table],
    dsn: str,
    *,
    schema: str | None = None,
) -> dict[str, int]:
    """(Re)creates the source's tables in a PostgreSQL database from logical tables.

    ``dsn`` is a libpq connection string or URL. The tables go to ``schema``
    (created if missing), else to the first schema of the search path. In one
    transaction, each served table is dropped if it exists, created under its
    physical name (TEXT for strings, codes and text dates; DATE for dates the
    system stores natively; BIGINT for BIGINT), loaded with COPY, indexed like
    the SQLite files (FPS number, surname and given names, person id of child
    tables; primary key on the person file) and analysed. Readers see the old
    tables (or wait) until the commit, then the new ones. Returns rows per
    logical table.
    """
    import psycopg

    source = federation.source(source_code)
    plans = table_plans(federation, source, tables, SCHEMA)
    if schema is not None:
        plain_name(schema, "schema")
    counts: dict[str, int] = {}
    with psycopg.connect(dsn) as conn, conn.transaction(), conn.cursor() as cur:
        if schema is not None:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
            cur.execute(f"SET LOCAL search_path TO {quote(schema)}")
        cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for plan in plans:
            data = tables.get(plan.name)
            columns = physical_text(source, plan, data)
            cur.execute(f"DROP TABLE IF EXISTS {quote(plan.table)}")
            cur.execute(plan.create)
            if columns:
                # FREEZE: the table is new in this transaction, so its rows can
                # be written frozen (no hint-bit rewrite on first read).
                with cur.copy(
                    f"COPY {quote(plan.table)} ({column_list(plan)}) FROM STDIN (FREEZE)"
                ) as copy:
                    for chunk in _copy_data(columns):
                        copy.write(chunk)
            if plan.primary_key is not None:
                cur.execute(
                    f"ALTER TABLE {quote(plan.table)} ADD PRIMARY KEY ({quote(plan.primary_key)})"
                )
            for statement in plan.indexes:
                cur.execute(statement)
            cur.execute(f"ANALYZE {quote(plan.table)}")
            counts[plan.name] = 0 if data is None else data.num_rows
    return counts


def create_database(target: str) -> None:
    """Creates the database a postgresql:// DSN names, if missing."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    params = postgres_connect_args(target)
    name = database_name(str(params.get("dbname") or ""))
    server = make_conninfo(target, dbname="postgres")
    with psycopg.connect(server, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another loader's
            conn.execute(f"CREATE DATABASE {quote(name)} ENCODING 'UTF8' TEMPLATE template0")
