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

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from accord.errors import ConfigError

from .logical import generate
from .sqlite_writer import create_statements, physical_values, quote

if TYPE_CHECKING:
    import pyarrow as pa

    from accord.federation import Federation, LogicalTable, Source, TableMapping

#: Logical VARCHAR columns that hold long free text: TEXT in MariaDB, where
#: every other string (names, identifiers, codes, text dates) is an
#: indexable VARCHAR(255).
FREE_TEXT_COLUMNS = frozenset(
    {"address", "offence_description", "conditions", "summary", "notes", "note"})

_VARCHAR_CHARS = 255
_TEXT_BYTES = 65_535  # MariaDB TEXT holds this many bytes (utf8mb4: up to 4 a character)
_MYSQL_BATCH_ROWS = 1_000  # rows per multi-row INSERT
_MYSQL_TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KINDS = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql",
          "mariadb": "mysql"}


@dataclass(frozen=True)
class _Column:
    logical: str
    physical: str
    logical_type: str
    sql_type: str
    max_chars: int | None = None  # VARCHAR(n): longest value, in characters
    max_bytes: int | None = None  # TEXT: longest value, in UTF-8 bytes


@dataclass(frozen=True)
class _TablePlan:
    name: str  # logical table
    table: str  # physical table
    columns: list[_Column]
    create: str
    indexes: list[str]
    primary_key: str | None  # physical column


def _sql_type(kind: str, logical_type: str, logical: str, *, coded: bool,
              date_format: str | None) -> tuple[str, int | None, int | None]:
    """(SQL type, character limit, byte limit) of one physical column."""
    text = logical_type == "VARCHAR" or (logical_type == "DATE" and date_format is not None)
    if kind == "postgresql":
        if text:
            return "TEXT", None, None
        return {"DATE": "DATE", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE PRECISION",
                "BOOLEAN": "BOOLEAN"}[logical_type], None, None
    if text:
        if logical_type == "VARCHAR" and not coded and logical in FREE_TEXT_COLUMNS:
            return "TEXT", None, _TEXT_BYTES
        return f"VARCHAR({_VARCHAR_CHARS})", _VARCHAR_CHARS, None
    return {"DATE": "DATE", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE",
            "BOOLEAN": "BOOLEAN"}[logical_type], None, None


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
            kind, logical_type, name, coded=bool(held.codes), date_format=held.date_format)
        columns.append(_Column(name, held.physical, logical_type, sql_type, max_chars, max_bytes))
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


def _plans(federation: Federation, source: Source, tables: dict[str, pa.Table],
           kind: str) -> list[_TablePlan]:
    for table in tables:
        if table not in source.tables:
            raise ConfigError(f"source {source.code} does not serve table {table!r}")
    return [_plan(kind, source, logical, source.tables[name])
            for name, logical in federation.tables.items() if name in source.tables]


def _values(source: Source, plan: _TablePlan, data: pa.Table | None) -> list[list[Any]]:
    """The table's physical values, column by column; checks they fit their columns."""
    if data is None or not data.num_rows:
        return []
    out = []
    for column in plan.columns:
        where = f"source {source.code}.{plan.name}.{column.logical}"
        held = source.tables[plan.name].columns[column.logical]
        values = physical_values(data.column(column.logical), column.logical_type, held, where)
        _check_fits(values, column, where, plan.table)
        out.append(values)
    return out


def _check_fits(values: list[Any], column: _Column, where: str, table: str) -> None:
    """Raises rather than let the server truncate (or refuse) a value."""
    if column.max_chars is not None:
        longest = max((len(v) for v in values if v is not None), default=0)
        if longest > column.max_chars:
            raise ValueError(
                f"{where}: a value of {longest} characters does not fit column "
                f"{table}.{column.physical} {column.sql_type}")
    if column.max_bytes is not None:
        limit = column.max_bytes
        for v in values:
            # A character takes at most 4 bytes: only long values need encoding.
            if v is not None and len(v) * 4 > limit and len(v.encode("utf-8")) > limit:
                raise ValueError(
                    f"{where}: a value of {len(v.encode('utf-8'))} bytes does not fit "
                    f"column {table}.{column.physical} {column.sql_type} ({limit} bytes)")


def _column_list(plan: _TablePlan) -> str:
    return ", ".join(quote(c.physical) for c in plan.columns)


# -- PostgreSQL ---------------------------------------------------------------------


def write_postgres(federation: Federation, source_code: str, tables: dict[str, pa.Table],
                   dsn: str, *, schema: str | None = None) -> dict[str, int]:
    """(Re)creates the source's tables in a PostgreSQL database from logical tables.

    ``dsn`` is a libpq connection string or URL. The tables go to ``schema``
    (created if missing), else to the first schema of the search path. In one
    transaction, each served table is dropped if it exists, created under its
    physical name (TEXT for strings, codes and text dates; DATE for dates the
    system stores natively; BIGINT for BIGINT), loaded with COPY, indexed like
    the SQLite files (FPS number, surname and given names, person id of child
    tables; primary key on the person file) and analysed. Readers see either
    the old tables or the new ones. Returns rows per logical table.
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
            columns = _values(source, plan, data)
            cur.execute(f"DROP TABLE IF EXISTS {quote(plan.table)}")
            cur.execute(plan.create)
            if columns:
                # FREEZE: the table is new in this transaction, so its rows can
                # be written frozen (no hint-bit rewrite on first read).
                with cur.copy(f"COPY {quote(plan.table)} ({_column_list(plan)}) "
                              "FROM STDIN (FREEZE)") as copy:
                    for row in zip(*columns, strict=True):
                        copy.write_row(row)
            if plan.primary_key is not None:
                cur.execute(f"ALTER TABLE {quote(plan.table)} "
                            f"ADD PRIMARY KEY ({quote(plan.primary_key)})")
            for statement in plan.indexes:
                cur.execute(statement)
            cur.execute(f"ANALYZE {quote(plan.table)}")
            counts[plan.name] = 0 if data is None else data.num_rows
    return counts


# -- MariaDB / MySQL ------------------------------------------------------------------


def mysql_connect_args(dsn: str, *, database: bool = True) -> dict[str, Any]:
    """mysql-connector arguments for ``mysql://user:password@host:port/dbname``.

    User and password are percent-decoded; query parameters (e.g.
    ``unix_socket``) are passed on as strings. With ``database=False`` the
    database is left out (to connect to the server itself).
    """
    url = urlsplit(dsn)
    if url.scheme not in ("mysql", "mariadb"):
        raise ConfigError(f"not a mysql:// URL: {url.scheme}://...")
    args: dict[str, Any] = {"host": url.hostname or "127.0.0.1", "port": url.port or 3306}
    if url.username:
        args["user"] = unquote(url.username)
    if url.password is not None:
        args["password"] = unquote(url.password)
    name = unquote(url.path.lstrip("/"))
    if database:
        if not name:
            raise ConfigError("the mysql:// URL names no database (mysql://user@host:port/dbname)")
        args["database"] = name
    args.update(parse_qsl(url.query))
    return args


def write_mysql(federation: Federation, source_code: str, tables: dict[str, pa.Table],
                dsn: str) -> dict[str, int]:
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
    import mysql.connector

    source = federation.source(source_code)
    plans = _plans(federation, source, tables, "mysql")
    values = {plan.name: _values(source, plan, tables.get(plan.name)) for plan in plans}
    conn = mysql.connector.connect(**mysql_connect_args(dsn), charset="utf8mb4",
                                   collation="utf8mb4_unicode_ci", autocommit=False)
    try:
        cur = conn.cursor()
        cur.execute("SELECT @@SESSION.sql_mode")
        row = cur.fetchone()
        modes = [m for m in str(row[0] if row else "").split(",") if m]
        modes += [m for m in ("ANSI_QUOTES", "STRICT_ALL_TABLES") if m not in modes]
        cur.execute("SET SESSION sql_mode = %s", (",".join(modes),))
        for plan in plans:
            cur.execute(f"DROP TABLE IF EXISTS {quote(plan.table)}")
            cur.execute(plan.create)
        counts: dict[str, int] = {}
        for plan in plans:
            columns = values[plan.name]
            if columns:
                marks = ", ".join(["%s"] * len(plan.columns))
                insert = (f"INSERT INTO {quote(plan.table)} ({_column_list(plan)}) "
                          f"VALUES ({marks})")
                rows = list(zip(*columns, strict=True))
                for start in range(0, len(rows), _MYSQL_BATCH_ROWS):
                    cur.executemany(insert, rows[start:start + _MYSQL_BATCH_ROWS])
            counts[plan.name] = len(columns[0]) if columns else 0
        conn.commit()
        for plan in plans:
            for statement in plan.indexes:
                cur.execute(statement)
            cur.execute(f"ANALYZE TABLE {quote(plan.table)}")
            cur.fetchall()
        cur.close()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    return counts


# -- a whole target -------------------------------------------------------------------


def load_target(federation: Federation, target: str, *, seed: int, scale: float,
                sources: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Generates the data and loads sources into one server database.

    ``target`` is ``postgresql://user@host:port/dbname`` or
    ``mysql://user:password@host:port/dbname``; the database is created if it
    does not exist. Loads every source whose backend kind matches the URL
    (postgresql or mysql), or the listed ``sources`` whatever their kind. In
    PostgreSQL the tables go to the ``public`` schema (physical table names
    differ from source to source). Returns source -> logical table -> rows.
    """
    scheme = urlsplit(target).scheme
    kind = _KINDS.get(scheme)
    if kind is None:
        raise ConfigError(f"target {scheme}://... is neither postgresql:// nor mysql://")
    if sources is None:
        codes = [c for c, s in federation.sources.items() if s.backend.kind == kind]
        if not codes:
            raise ConfigError(f"no source of the federation has a {kind} backend; "
                              "name the sources to load")
    else:
        codes = [federation.source(code).code for code in sources]
    if kind == "postgresql":
        _create_postgres_database(target)
    else:
        _create_mysql_database(target)
    data = generate(federation, seed=seed, scale=scale)
    counts: dict[str, dict[str, int]] = {}
    for code in codes:
        if kind == "postgresql":
            counts[code] = write_postgres(federation, code, data[code], target, schema="public")
        else:
            counts[code] = write_mysql(federation, code, data[code], target)
    return counts


def _database_name(name: str, target: str) -> str:
    if not _PLAIN_NAME.match(name):
        raise ConfigError(f"{target}: database name {name!r} is not a plain SQL identifier")
    return name


def _create_postgres_database(target: str) -> None:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(target)
    name = _database_name(str(params.get("dbname") or ""), target)
    server = make_conninfo(target, dbname="postgres")
    with psycopg.connect(server, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        try:
            conn.execute(f"CREATE DATABASE {quote(name)} ENCODING 'UTF8' TEMPLATE template0")
        except psycopg.errors.DuplicateDatabase:
            pass  # created meanwhile by another loader


def _create_mysql_database(target: str) -> None:
    import mysql.connector

    name = _database_name(str(mysql_connect_args(target)["database"]), target)
    conn = mysql.connector.connect(**mysql_connect_args(target, database=False))
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        cur.close()
    finally:
        conn.close()
