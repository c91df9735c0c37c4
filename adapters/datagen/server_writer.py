"""Writing a source's physical database into PostgreSQL or MariaDB.

The server counterpart of ``sqlite_writer``: the same physical table and
column names, codes, text date formats and indexes, taken from the source's
mapping in the federation file, with each server's own column types. Unlike
SQLite, a logical DATE column without a ``date_format`` is a native ``DATE``
column. MariaDB tables use ``utf8mb4`` with the case- and accent-insensitive
``utf8mb4_unicode_ci`` collation, as a real system's would.

Loading is idempotent: a source's tables are dropped and recreated, so
loading the same data twice leaves the same rows once.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from accord.errors import ConfigError
from adapters.backends.dsn import mysql_connect_args
from adapters.backends.registry import for_url, server_schemes

from .logical import generate
from .sqlite_writer import create_statements, physical_values, quote

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mysql.connector.abstracts import MySQLConnectionAbstract

    from accord.federation import Federation, LogicalTable, Source, TableMapping

#: Logical VARCHAR columns that hold long free text: TEXT in MariaDB, where
#: every other string (names, identifiers, codes, text dates) is an
#: indexable VARCHAR(255).
FREE_TEXT_COLUMNS = frozenset(
    {"address", "offence_description", "conditions", "summary", "notes", "note"}
)

_VARCHAR_CHARS = 255
_TEXT_BYTES = 65_535  # MariaDB TEXT holds this many bytes (utf8mb4: up to 4 a character)
_CHUNK_ROWS = 50_000  # rows encoded at a time
_MYSQL_BATCH_ROWS = 1_000  # rows per multi-row INSERT ...
_MYSQL_BATCH_BYTES = 1 << 20  # ... unless they would make a longer statement
_MYSQL_TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class _Column:
    logical: str
    physical: str
    logical_type: str
    sql_type: str
    max_chars: int | None = None  # VARCHAR(n): longest value, in characters
    max_bytes: int | None = None  # TEXT: longest value, in UTF-8 bytes
    finite_only: bool = False  # no NaN or infinity (MariaDB DOUBLE)


@dataclass(frozen=True)
class _TablePlan:
    name: str  # logical table
    table: str  # physical table
    columns: list[_Column]
    create: str
    indexes: list[str]
    primary_key: str | None  # physical column


def _sql_type(
    kind: str, logical_type: str, logical: str, *, coded: bool, date_format: str | None
) -> tuple[str, int | None, int | None]:
    """(SQL type, character limit, byte limit) of one physical column."""
    text = logical_type == "VARCHAR" or (logical_type == "DATE" and date_format is not None)
    if kind == "postgresql":
        if text:
            return "TEXT", None, None
        return (
            {
                "DATE": "DATE",
                "BIGINT": "BIGINT",
                "DOUBLE": "DOUBLE PRECISION",
                "BOOLEAN": "BOOLEAN",
            }[logical_type],
            None,
            None,
        )
    if text:
        if logical_type == "VARCHAR" and not coded and logical in FREE_TEXT_COLUMNS:
            return "TEXT", None, _TEXT_BYTES
        return f"VARCHAR({_VARCHAR_CHARS})", _VARCHAR_CHARS, None
    return (
        {"DATE": "DATE", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN"}[
            logical_type
        ],
        None,
        None,
    )


def _plan(kind: str, source: Source, logical: LogicalTable, mapping: TableMapping) -> _TablePlan:
    # The index statements (and the checks on the mapping) are SQLite's: they
    # quote identifiers with double quotes, as PostgreSQL does and MariaDB
    # does in ANSI_QUOTES mode, which write_mysql sets for its session.
    _, indexes, _ = create_statements(source, logical, mapping)
    columns = []
    for name, logical_type in logical.columns.items():
        held = mapping.columns.get(name)
        if held is None:
            continue
        sql_type, max_chars, max_bytes = _sql_type(
            kind, logical_type, name, coded=bool(held.codes), date_format=held.date_format
        )
        columns.append(
            _Column(
                name,
                held.physical,
                logical_type,
                sql_type,
                max_chars,
                max_bytes,
                finite_only=kind == "mysql" and logical_type == "DOUBLE",
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
            extra = " NOT NULL PRIMARY KEY" if kind == "mysql" else " NOT NULL"
        defs.append(f"{quote(column.physical)} {column.sql_type}{extra}")
    table = mapping.physical_table
    create = f"CREATE TABLE {quote(table)} (\n  " + ",\n  ".join(defs) + "\n)"
    if kind == "mysql":
        create += f" {_MYSQL_TABLE_OPTIONS}"
    return _TablePlan(logical.name, table, columns, create, indexes, primary_key)


def _plans(
    federation: Federation, source: Source, tables: dict[str, pa.Table], kind: str
) -> list[_TablePlan]:
    for table in tables:
        if table not in source.tables:
            raise ConfigError(f"source {source.code} does not serve table {table!r}")
    return [
        _plan(kind, source, logical, source.tables[name])
        for name, logical in federation.tables.items()
        if name in source.tables
    ]


def _physical_text(source: Source, plan: _TablePlan, data: pa.Table | None) -> list[pa.Array]:
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


def _check_fits(text: pa.Array, column: _Column, where: str, table: str) -> None:
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


def _column_list(plan: _TablePlan) -> str:
    return ", ".join(quote(c.physical) for c in plan.columns)


def _replace(array: pa.Array, pairs: tuple[tuple[str, str], ...]) -> pa.Array:
    """Replaces substrings in order; a pass runs only if the text holds its
    substring (a byte search over the whole column is far cheaper)."""
    data = array.buffers()[2]
    raw = b"" if data is None else data.to_pybytes()
    for old, new in pairs:
        if old.encode() in raw:
            array = pc.replace_substring(array, old, new)
    return array


def _chunks(
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


#: COPY text format: backslash escapes, tab between columns, \\N for NULL.
_COPY_ESCAPES = (("\\", "\\\\"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def _copy_data(columns: list[pa.Array]) -> Iterator[memoryview]:
    """COPY ... FROM STDIN text-format data for the columns, a chunk at a time."""
    escaped = [_replace(c, _COPY_ESCAPES) for c in columns]
    for data, offsets in _chunks(escaped, "\t", "", "\n", null="\\N"):
        yield data[offsets[0] : offsets[-1]]


#: String literals for MariaDB with backslash escapes on (write_mysql makes
#: sure NO_BACKSLASH_ESCAPES is off) over a utf8mb4 connection, where no
#: multi-byte character holds a backslash or quote byte. Quotes are doubled.
_LITERAL_ESCAPES = (("\\", "\\\\"), ("'", "''"), ("\0", "\\0"))


def _literals(text: pa.Array, column: _Column) -> pa.Array:
    """SQL literals for MariaDB: quoted, escaped strings and dates; numbers; NULL."""
    if column.logical_type in ("VARCHAR", "DATE"):
        text = pc.binary_join_element_wise("'", _replace(text, _LITERAL_ESCAPES), "'", "")
    return pc.fill_null(text, "NULL")


def _insert_statements(insert: str, plan: _TablePlan, columns: list[pa.Array]) -> Iterator[str]:
    """Multi-row INSERT statements: ``insert`` followed by (...),(...),..."""
    literals = [_literals(text, column) for text, column in zip(columns, plan.columns, strict=True)]
    for data, offsets in _chunks(literals, ",", "(", "),"):
        first, last = 0, len(offsets) - 1
        while first < last:
            end = min(first + _MYSQL_BATCH_ROWS, last)
            while end - first > 1 and offsets[end] - offsets[first] > _MYSQL_BATCH_BYTES:
                end = first + (end - first) // 2
            # the rows, without the comma after the last one
            yield insert + str(data[offsets[first] : offsets[end] - 1], "utf-8")
            first = end


# -- PostgreSQL ---------------------------------------------------------------------


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
    plans = _plans(federation, source, tables, "postgresql")
    if schema is not None and not _PLAIN_NAME.match(schema):
        raise ConfigError(f"schema {schema!r} is not a plain SQL identifier")
    counts: dict[str, int] = {}
    with psycopg.connect(dsn) as conn, conn.transaction(), conn.cursor() as cur:
        if schema is not None:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
            cur.execute(f"SET LOCAL search_path TO {quote(schema)}")
        cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for plan in plans:
            data = tables.get(plan.name)
            columns = _physical_text(source, plan, data)
            cur.execute(f"DROP TABLE IF EXISTS {quote(plan.table)}")
            cur.execute(plan.create)
            if columns:
                # FREEZE: the table is new in this transaction, so its rows can
                # be written frozen (no hint-bit rewrite on first read).
                with cur.copy(
                    f"COPY {quote(plan.table)} ({_column_list(plan)}) FROM STDIN (FREEZE)"
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


# -- MariaDB / MySQL ------------------------------------------------------------------


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
    indexes built (FPS number, surname and given names, person id of child
    tables). A value too long for its column raises ValueError before
    anything is dropped. MariaDB commits DDL implicitly, so a failed load
    leaves empty tables. Returns rows per logical table.
    """
    source = federation.source(source_code)
    plans = _plans(federation, source, tables, "mysql")
    values = {plan.name: _physical_text(source, plan, tables.get(plan.name)) for plan in plans}
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
                insert = f"INSERT INTO {quote(plan.table)} ({_column_list(plan)}) VALUES "
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


# -- a whole target -------------------------------------------------------------------


def load_target(
    federation: Federation,
    target: str,
    *,
    seed: int,
    scale: float,
    sources: list[str] | None = None,
) -> dict[str, dict[str, int]]:
    """Generates the data and loads sources into one server database.

    ``target`` is ``postgresql://user@host:port/dbname`` or
    ``mysql://user:password@host:port/dbname``; the database is created if it
    does not exist. Loads every source whose backend kind matches the URL
    (postgresql or mysql), or the listed ``sources`` whatever their kind. In
    PostgreSQL the tables go to the ``public`` schema (physical table names
    differ from source to source). Returns source -> logical table -> rows.
    """
    scheme = urlsplit(target).scheme
    server = for_url(target)
    if server is None:
        raise ConfigError(f"target {scheme}://... is neither {server_schemes('nor')}")
    kind = server.kind
    if sources is None:
        codes = [c for c, s in federation.sources.items() if s.backend.kind == kind]
        if not codes:
            raise ConfigError(
                f"no source of the federation has a {kind} backend; name the sources to load"
            )
    else:
        codes = [federation.source(code).code for code in sources]
    create_database(target)
    data = generate(federation, seed=seed, scale=scale)
    counts: dict[str, dict[str, int]] = {}
    for code in codes:
        if kind == "postgresql":
            counts[code] = write_postgres(federation, code, data[code], target, schema="public")
        else:
            counts[code] = write_mysql(federation, code, data[code], target)
    return counts


def create_database(target: str) -> None:
    """Creates the database a postgresql:// or mysql:// URL names, if missing."""
    server = for_url(target)
    kind = server.kind if server else None
    if kind == "postgresql":
        _create_postgres_database(target)
    elif kind == "mysql":
        _create_mysql_database(target)
    else:
        raise ConfigError(f"a server DSN starts with {server_schemes()}")


def _database_name(name: str) -> str:
    if not _PLAIN_NAME.match(name):  # (the target URL may hold a password: not in the message)
        raise ConfigError(f"target database name {name!r} is not a plain SQL identifier")
    return name


def _create_postgres_database(target: str) -> None:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(target)
    name = _database_name(str(params.get("dbname") or ""))
    server = make_conninfo(target, dbname="postgres")
    with psycopg.connect(server, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another loader's
            conn.execute(f"CREATE DATABASE {quote(name)} ENCODING 'UTF8' TEMPLATE template0")


def _create_mysql_database(target: str) -> None:
    name = _database_name(str(mysql_connect_args(target)["database"]))
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
