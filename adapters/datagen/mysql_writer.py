"""Writing a source's physical database into MariaDB (or MySQL).

The server counterpart of ``sqlite_writer``: the same physical table and
column names, codes, text date formats and indexes (``physical``), with
MariaDB's own column types. Unlike SQLite, a logical DATE column without a
``date_format`` is a native ``DATE`` column. Tables use ``utf8mb4`` with the
case- and accent-insensitive ``utf8mb4_unicode_ci`` collation, as a real
system's would. Rows are loaded in multi-row INSERTs.

Loading is idempotent: a source's tables are dropped and recreated, so
loading the same data twice leaves the same rows once.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

from adapters.backends.dsn import mysql_connect_args

from .physical import (
    Column,
    ServerSchema,
    TablePlan,
    column_list,
    database_name,
    physical_text,
    quote,
    replace_text,
    table_plans,
    text_rows,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa
    from mysql.connector.abstracts import MySQLConnectionAbstract

    from accord.federation import Federation

#: Logical VARCHAR columns that hold long free text: TEXT in MariaDB, where
#: every other string (names, identifiers, codes, text dates) is an
#: indexable VARCHAR(255).
FREE_TEXT_COLUMNS = frozenset(
    {"address", "offence_description", "conditions", "summary", "notes", "note"}
)

_VARCHAR_CHARS = 255
_TEXT_BYTES = 65_535  # MariaDB TEXT holds this many bytes (utf8mb4: up to 4 a character)
_BATCH_ROWS = 1_000  # rows per multi-row INSERT ...
_BATCH_BYTES = 1 << 20  # ... unless they would make a longer statement
_TYPES = {"DATE": "DATE", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN"}


def _column_type(
    logical_type: str, logical: str, coded: bool, date_format: str | None
) -> tuple[str, int | None, int | None]:
    """VARCHAR(255) for names, identifiers, codes and text dates, TEXT for free text."""
    if logical_type == "VARCHAR" or (logical_type == "DATE" and date_format is not None):
        if logical_type == "VARCHAR" and not coded and logical in FREE_TEXT_COLUMNS:
            return "TEXT", None, _TEXT_BYTES
        return f"VARCHAR({_VARCHAR_CHARS})", _VARCHAR_CHARS, None
    return _TYPES[logical_type], None, None


#: MariaDB clusters a table on its primary key, so it is declared up front.
SCHEMA = ServerSchema(
    _column_type,
    primary_key_inline=True,
    table_options="ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    finite_doubles=True,
)


#: String literals for MariaDB with backslash escapes on (write_mysql makes
#: sure NO_BACKSLASH_ESCAPES is off) over a utf8mb4 connection, where no
#: multi-byte character holds a backslash or quote byte. Quotes are doubled.
_LITERAL_ESCAPES = (("\\", "\\\\"), ("'", "''"), ("\0", "\\0"))


def _literals(text: pa.Array, column: Column) -> pa.Array:
    """SQL literals for MariaDB: quoted, escaped strings and dates; numbers; NULL."""
    if column.logical_type in ("VARCHAR", "DATE"):
        text = pc.binary_join_element_wise("'", replace_text(text, _LITERAL_ESCAPES), "'", "")
    return pc.fill_null(text, "NULL")


def _insert_statements(insert: str, plan: TablePlan, columns: list[pa.Array]) -> Iterator[str]:
    """Multi-row INSERT statements: ``insert`` followed by (...),(...),..."""
    literals = [_literals(text, column) for text, column in zip(columns, plan.columns, strict=True)]
    for data, offsets in text_rows(literals, ",", "(", "),"):
        first, last = 0, len(offsets) - 1
        while first < last:
            end = min(first + _BATCH_ROWS, last)
            while end - first > 1 and offsets[end] - offsets[first] > _BATCH_BYTES:
                end = first + (end - first) // 2
            # the rows, without the comma after the last one
            yield insert + str(data[offsets[first] : offsets[end] - 1], "utf-8")
            first = end


def _mysql_connect(**args: Any) -> MySQLConnectionAbstract:
    import mysql.connector
    from mysql.connector.abstracts import MySQLConnectionAbstract

    conn = mysql.connector.connect(**args)
    assert isinstance(conn, MySQLConnectionAbstract)  # not pooled: no pool arguments
    return conn


def write_mysql(
    federation: Federation, source_code: str, tables: dict[str, pa.Table], dsn: str
) -> dict[str, int]:
    """(Re)creates the source's tables in a MariaDB (or MySQL) database.

    ``dsn`` is ``mysql://user:password@host:port/dbname``. Each served table
    is dropped if it exists and created under its physical name (InnoDB,
    utf8mb4, utf8mb4_unicode_ci; VARCHAR(255) for names, identifiers, codes
    and text dates, TEXT for free text, DATE for dates the system stores
    natively, BIGINT for BIGINT; primary key on the person file). The rows
    are then inserted in multi-row INSERTs and committed once, and the
    indexes built (FPS number, surname and given names, birth date, person id of child
    tables). A value too long for its column raises ValueError before
    anything is dropped. MariaDB commits DDL implicitly, so a failed load
    leaves empty tables. Returns rows per logical table.
    """
    source = federation.source(source_code)
    plans = table_plans(federation, source, tables, SCHEMA)
    values = {plan.name: physical_text(source, plan, tables.get(plan.name)) for plan in plans}
    conn = _mysql_connect(
        **{
            **mysql_connect_args(dsn),
            "charset": "utf8mb4",
            "collation": "utf8mb4_unicode_ci",
            "autocommit": False,
        }
    )
    try:
        cur = conn.cursor()
        # ANSI_QUOTES: "identifiers", as in the shared index statements;
        # strict: an error, never a silently truncated value; backslash
        # escapes on, as _literals assumes.
        modes = [m for m in conn.sql_mode.split(",") if m and m != "NO_BACKSLASH_ESCAPES"]
        modes += [m for m in ("ANSI_QUOTES", "STRICT_ALL_TABLES") if m not in modes]
        conn.sql_mode = ",".join(modes)
        for plan in plans:
            cur.execute(f"DROP TABLE IF EXISTS {quote(plan.table)}")
            cur.execute(plan.create)
        counts: dict[str, int] = {}
        for plan in plans:
            columns = values[plan.name]
            if columns:
                insert = f"INSERT INTO {quote(plan.table)} ({column_list(plan)}) VALUES "
                for rows in _insert_statements(insert, plan, columns):
                    conn.cmd_query(rows)
            counts[plan.name] = len(columns[0]) if columns else 0
        conn.commit()
        for plan in plans:
            for statement in plan.indexes:
                cur.execute(statement)
            cur.execute(f"ANALYZE TABLE {quote(plan.table)}")
            cur.fetchall()
        cur.close()
    except BaseException:
        with contextlib.suppress(Exception):  # the connection may be gone
            conn.rollback()
        raise
    finally:
        conn.close()
    return counts


def create_database(target: str) -> None:
    """Creates the database a mysql:// DSN names, if missing (utf8mb4_unicode_ci)."""
    name = database_name(str(mysql_connect_args(target)["database"]))
    conn = _mysql_connect(**mysql_connect_args(target, database=False))
    try:
        cur = conn.cursor()
        cur.execute(
            f"CREATE DATABASE IF NOT EXISTS `{name}` "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        cur.close()
    finally:
        conn.close()
