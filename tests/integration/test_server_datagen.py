"""Synthetic data in real PostgreSQL and MariaDB servers (``postgres_writer``, ``mysql_writer``).

Each test works in a database of its own, created for it and dropped after
it. The servers are expected on 127.0.0.1 (PostgreSQL 5432 as postgres with
trust auth, MariaDB 3306 as root without password); ACCORD_TEST_POSTGRES and
ACCORD_TEST_MYSQL override the server URLs. Without a server the tests
skip, except on CI (CI=true), where they fail.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import unicodedata
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pytest

from accord.errors import ConfigError
from accord.federation import Backend, Federation, load_federation
from adapters.datagen import generate, load_target, write_mysql, write_postgres
from tests.integration.servers import unreachable
from tests.readback import rows_to_logical

if TYPE_CHECKING:
    from collections.abc import Iterable

    import psycopg
    from mysql.connector.abstracts import MySQLConnectionAbstract
    from mysql.connector.pooling import PooledMySQLConnection

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FEDERATION_FILE = REPO / "deploy" / "federation.yaml"
SEED = 7
SCALE = 0.002
POSTGRES = os.environ.get("ACCORD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
MYSQL = os.environ.get("ACCORD_TEST_MYSQL", "mysql://root@127.0.0.1:3306")

#: MariaDB keeps these logical columns as TEXT; other strings are VARCHAR(255).
FREE_TEXT = {"address", "offence_description", "conditions", "summary", "notes", "note"}

#: Values that break naive quoting or COPY escaping.
TRICKY = [
    "O'Brien \\ back\\slash",
    "tab\there",
    "new\nline\r\nand carriage",
    "\\N",  # COPY's NULL marker, as text
    "",  # empty, not NULL
    'double "quote"',
    "percent %s %(x)s",
    "emoji 😀 and \U0001d518nicode beyond the BMP",
    "Bélanger, Côté, Lévesque, Noël, Müller, Øster",
    "e\u0301 decomposed",  # comes back decomposed, as it went in
]


# -- servers and databases ------------------------------------------------------------


def _mysql_args(url: str, database: str | None = None) -> dict[str, Any]:
    parts = urlsplit(url)
    args: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "charset": "utf8mb4",
        "collation": "utf8mb4_unicode_ci",
    }
    if database:
        args["database"] = database
    return args


def _mysql_connect(
    url: str, database: str | None = None
) -> PooledMySQLConnection | MySQLConnectionAbstract:
    import mysql.connector

    return mysql.connector.connect(**_mysql_args(url, database), connection_timeout=5)


def _postgres_connect(
    url: str, dbname: str = "postgres", **kwargs: Any
) -> psycopg.Connection[tuple[Any, ...]]:
    import psycopg
    from psycopg.conninfo import make_conninfo

    return psycopg.connect(make_conninfo(url, dbname=dbname), connect_timeout=5, **kwargs)


def require_server(kind: str) -> None:
    """Skips the test (fails it on CI) when the server does not answer."""
    url = POSTGRES if kind == "postgresql" else MYSQL
    name = "PostgreSQL" if kind == "postgresql" else "MariaDB"
    try:
        if kind == "postgresql":
            _postgres_connect(url).close()
        else:
            _mysql_connect(url).close()
    except Exception as exc:  # ImportError, connection refused, authentication ...
        unreachable(f"{name} at {urlsplit(url).netloc}", exc)


def _new_name() -> str:
    return f"accord_test_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    """The URL of a database of the test's own (not created yet); dropped afterwards."""
    require_server("postgresql")
    name = _new_name()

    def drop() -> None:
        with _postgres_connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    request.addfinalizer(drop)
    return f"{POSTGRES}/{name}"


@pytest.fixture
def mysql_url(request: pytest.FixtureRequest) -> str:
    """The URL of a database of the test's own (not created yet); dropped afterwards."""
    require_server("mysql")
    name = _new_name()

    def drop() -> None:
        conn = _mysql_connect(MYSQL)
        try:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()

    request.addfinalizer(drop)
    return f"{MYSQL}/{name}"


@pytest.fixture(scope="module")
def federation() -> Federation:
    return load_federation(FEDERATION_FILE)


@pytest.fixture(scope="module")
def mysql_federation(federation: Federation) -> Federation:
    """The federation with BC and YT on MariaDB (YT stores its dates natively)."""
    sources = dict(federation.sources)
    for code in ("BC", "YT"):
        sources[code] = replace(sources[code], backend=Backend(kind="mysql", dsn="env:UNUSED"))
    return Federation(federation.name, federation.tables, sources, federation.path)


@pytest.fixture(scope="module")
def data(federation: Federation) -> dict[str, dict[str, pa.Table]]:
    return generate(federation, seed=SEED, scale=SCALE)


# -- an independent reader: physical table + mapping -> logical table ---------------


def _select(federation: Federation, code: str, table: str, quote: str) -> tuple[str, list[str]]:
    logical = federation.tables[table]
    mapping = federation.sources[code].tables[table]
    held = [c for c in logical.columns if c in mapping.columns]
    columns = ", ".join(f"{quote}{mapping.columns[c].physical}{quote}" for c in held)
    return f"SELECT {columns} FROM {quote}{mapping.physical_table}{quote}", held


def read_postgres(url: str, federation: Federation, code: str, table: str) -> pa.Table:
    select, held = _select(federation, code, table, '"')
    with _postgres_connect(url, urlsplit(url).path.lstrip("/")) as conn:
        rows = conn.execute(select).fetchall()
    return rows_to_logical(federation, code, table, held, rows, native_dates=True)


def read_mysql(url: str, federation: Federation, code: str, table: str) -> pa.Table:
    select, held = _select(federation, code, table, "`")
    conn = _mysql_connect(MYSQL, urlsplit(url).path.lstrip("/"))
    try:
        cur = conn.cursor()
        cur.execute(select)
        rows = _tuples(cur.fetchall())
    finally:
        conn.close()
    return rows_to_logical(federation, code, table, held, rows, native_dates=True)


def ordered(table: pa.Table) -> pa.Table:
    """Rows in a fixed order: a server table's rows come in no particular order."""
    return table.sort_by([(c, "ascending") for c in table.column_names])


def counts_of(tables: dict[str, pa.Table]) -> dict[str, int]:
    return {name: t.num_rows for name, t in tables.items()}


def _tuples(rows: Iterable[object]) -> list[tuple[Any, ...]]:
    """A plain MySQL cursor's rows (its type allows dictionaries too)."""
    found = []
    for row in rows:
        assert isinstance(row, tuple), row
        found.append(row)
    return found


def _pg_query(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with _postgres_connect(url, urlsplit(url).path.lstrip("/")) as conn:
        return conn.execute(sql, params).fetchall()


def _mysql_query(url: str, sql: str, params: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    conn = _mysql_connect(MYSQL, urlsplit(url).path.lstrip("/"))
    try:
        cur = conn.cursor()
        cur.execute(sql, params)
        return _tuples(cur.fetchall())
    finally:
        conn.close()


def _expected_indexes(federation: Federation, code: str, table: str) -> set[tuple[str, ...]]:
    columns = federation.sources[code].tables[table].columns
    expected: set[tuple[str, ...]] = {
        (columns["fps_number"].physical,),
        (columns["source_person_id"].physical,),
    }
    for surname, given in (("surname", "given_names"), ("alias_surname", "alias_given_names")):
        if surname in columns:
            expected.add((columns[surname].physical, columns[given].physical))
    if table == "offenders":  # a history looks person files up by birth date
        expected.add((columns["birth_date"].physical,))
    return expected


def _index_columns(indexdef: str) -> tuple[str, ...]:
    """The columns a PostgreSQL index definition names, unquoted."""
    found = re.search(r"\((.*)\)$", indexdef)
    assert found is not None, indexdef
    return tuple(c.strip().strip('"') for c in found.group(1).split(","))


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


# -- PostgreSQL: CA-CSC -------------------------------------------------------------------


def test_postgres_tables_columns_and_indexes(federation, data, pg_url):
    counts = load_target(federation, pg_url, seed=SEED, scale=SCALE, sources=["CA-CSC"])
    assert counts == {"CA-CSC": counts_of(data["CA-CSC"])}
    source = federation.sources["CA-CSC"]
    tables = {
        r[0]
        for r in _pg_query(
            pg_url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    }
    assert tables == {m.physical_table for m in source.tables.values()}
    indexdefs = _pg_query(
        pg_url, "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'"
    )
    for name, mapping in source.tables.items():
        logical = federation.tables[name]
        columns = dict(
            _pg_query(
                pg_url,
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = %s",
                (mapping.physical_table,),
            )
        )
        expected = {}
        for col in mapping.columns.values():
            type_name = logical.columns[col.logical]
            expected[col.physical] = (
                "bigint"
                if type_name == "BIGINT"
                else "date"
                if type_name == "DATE" and not col.date_format
                else "text"
            )
        assert columns == expected, name
        indexed = {_index_columns(d) for t, d in indexdefs if t == mapping.physical_table}
        assert _expected_indexes(federation, "CA-CSC", name) <= indexed, (name, indexed)
    # the person file's id is its primary key
    pk = _pg_query(
        pg_url,
        """
        SELECT a.attname FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = '"OMS_OFFENDER"'::regclass AND i.indisprimary""",
    )
    assert pk == [("OFFENDER_ID",)]
    # dates without a format are native: three of CSC's tables have one
    native = _pg_query(
        pg_url,
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND data_type = 'date'",
    )
    assert set(native) == {
        ("OMS_INCIDENT", "INCIDENT_DATE"),
        ("OMS_ALERT", "RAISED_DATE"),
        ("OMS_HEALTH_NOTE", "NOTE_DATE"),
    }


def test_postgres_codes_dates_and_logical_round_trip(federation, data, pg_url):
    load_target(federation, pg_url, seed=SEED, scale=SCALE, sources=["CA-CSC"])
    offenders = data["CA-CSC"]["offenders"]
    status = federation.sources["CA-CSC"].tables["offenders"].columns["status"]
    stored = {r[0] for r in _pg_query(pg_url, 'SELECT DISTINCT "STATUS_CD" FROM "OMS_OFFENDER"')}
    assert stored == {status.reverse_codes[v] for v in offenders.column("status").to_pylist()}
    dob = [r[0] for r in _pg_query(pg_url, 'SELECT "DOB" FROM "OMS_OFFENDER"')]
    assert "19880229" in dob
    assert all(re.fullmatch(r"\d{8}", v) for v in dob if v is not None)
    assert any(v is None for v in dob)
    raised = [r[0] for r in _pg_query(pg_url, 'SELECT "RAISED_DATE" FROM "OMS_ALERT"')]
    assert all(v is None or type(v) is dt.date for v in raised)
    assert any(type(v) is dt.date for v in raised)
    for name, table in data["CA-CSC"].items():
        back = read_postgres(pg_url, federation, "CA-CSC", name)
        assert ordered(back).equals(ordered(table)), name


def test_postgres_reload_is_idempotent(federation, data, pg_url):
    first = load_target(federation, pg_url, seed=SEED, scale=SCALE, sources=["CA-CSC"])
    _pg_query(pg_url, """INSERT INTO "OMS_ALERT" ("OFFENDER_ID") VALUES ('stray') RETURNING 1""")
    second = load_target(federation, pg_url, seed=SEED, scale=SCALE, sources=["CA-CSC"])
    assert first == second == {"CA-CSC": counts_of(data["CA-CSC"])}
    for name, mapping in federation.sources["CA-CSC"].tables.items():
        ((count,),) = _pg_query(pg_url, f'SELECT count(*) FROM "{mapping.physical_table}"')
        assert count == data["CA-CSC"][name].num_rows, name
    ((rows, distinct),) = _pg_query(
        pg_url, 'SELECT count(*), count(DISTINCT "OFFENDER_ID") FROM "OMS_OFFENDER"'
    )
    assert rows == distinct
    ((indexes,),) = _pg_query(pg_url, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'")
    assert indexes == sum(
        len(_expected_indexes(federation, "CA-CSC", name))
        for name in federation.sources["CA-CSC"].tables
    )  # no leftovers


def test_postgres_tricky_text_and_schema(federation, data, pg_url):
    load_target(federation, pg_url, seed=SEED, scale=SCALE, sources=["CA-CSC"])
    tables = dict(data["CA-CSC"])
    offenders = tables["offenders"]
    surnames = offenders.column("surname").to_pylist()
    surnames[: len(TRICKY)] = TRICKY
    i = offenders.schema.get_field_index("surname")
    tables["offenders"] = offenders.set_column(i, "surname", pa.array(surnames, pa.string()))
    counts = write_postgres(federation, "CA-CSC", tables, pg_url)
    assert counts == counts_of(tables)
    back = read_postgres(pg_url, federation, "CA-CSC", "offenders")
    assert ordered(back).equals(ordered(tables["offenders"]))
    stored = {r[0] for r in _pg_query(pg_url, 'SELECT "SURNAME" FROM "OMS_OFFENDER"')}
    assert set(TRICKY) <= stored
    # another schema: its own copy, public untouched
    write_postgres(federation, "CA-CSC", data["CA-CSC"], pg_url, schema="oms")
    in_oms = {
        r[0]
        for r in _pg_query(
            pg_url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'oms'"
        )
    }
    assert in_oms == {m.physical_table for m in federation.sources["CA-CSC"].tables.values()}
    assert set(TRICKY) <= {r[0] for r in _pg_query(pg_url, 'SELECT "SURNAME" FROM "OMS_OFFENDER"')}


def test_load_target_needs_sources_of_its_kind(federation):
    with pytest.raises(ConfigError, match=r"no source .* postgresql backend"):
        load_target(federation, "postgresql://postgres@127.0.0.1:5432/x", seed=1, scale=0.001)
    with pytest.raises(ConfigError, match="neither"):
        load_target(federation, "sqlite:///tmp/x", seed=1, scale=0.001, sources=["BC"])
    with pytest.raises(ConfigError, match="unknown source"):
        load_target(federation, "mysql://root@127.0.0.1/x", seed=1, scale=0.001, sources=["NB"])


# -- MariaDB: BC (and YT) -------------------------------------------------------------------


def test_mysql_tables_columns_and_indexes(mysql_federation, data, mysql_url):
    counts = load_target(mysql_federation, mysql_url, seed=SEED, scale=SCALE)
    assert counts == {code: counts_of(data[code]) for code in ("BC", "YT")}
    name_of_db = urlsplit(mysql_url).path.lstrip("/")
    ((charset, collation),) = _mysql_query(
        mysql_url,
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
        "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
        (name_of_db,),
    )
    assert (charset, collation) == ("utf8mb4", "utf8mb4_unicode_ci")
    tables = dict(
        _mysql_query(
            mysql_url,
            "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s",
            (name_of_db,),
        )
    )
    expected_tables = {
        m.physical_table
        for code in ("BC", "YT")
        for m in mysql_federation.sources[code].tables.values()
    }
    assert tables == dict.fromkeys(expected_tables, "utf8mb4_unicode_ci")
    for code in ("BC", "YT"):
        for name, mapping in mysql_federation.sources[code].tables.items():
            logical = mysql_federation.tables[name]
            rows = _mysql_query(
                mysql_url,
                "SELECT COLUMN_NAME, COLUMN_TYPE, COLLATION_NAME "
                "FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (name_of_db, mapping.physical_table),
            )
            columns = {
                r[0]: (r[1].decode() if isinstance(r[1], bytes) else r[1], r[2]) for r in rows
            }
            expected: dict[str, tuple[str, str | None]] = {}
            for col in mapping.columns.values():
                type_name = logical.columns[col.logical]
                if type_name == "BIGINT":
                    expected[col.physical] = ("bigint(20)", None)
                elif type_name == "DATE" and not col.date_format:
                    expected[col.physical] = ("date", None)
                elif col.logical in FREE_TEXT and not col.codes:
                    expected[col.physical] = ("text", "utf8mb4_unicode_ci")
                else:
                    expected[col.physical] = ("varchar(255)", "utf8mb4_unicode_ci")
            assert columns == expected, (code, name)
            index_rows = _mysql_query(mysql_url, f"SHOW INDEX FROM `{mapping.physical_table}`")
            by_name: dict[str, list[tuple[int, str]]] = {}
            for row in index_rows:  # Table, Non_unique, Key_name, Seq_in_index, Column_name
                by_name.setdefault(row[2], []).append((row[3], row[4]))
            indexed = {tuple(c for _, c in sorted(cols)) for cols in by_name.values()}
            assert _expected_indexes(mysql_federation, code, name) <= indexed, (code, name)
            if name == "offenders":
                primary = sorted(by_name["PRIMARY"])
                assert primary == [(1, mapping.columns["source_person_id"].physical)]


def test_mysql_codes_dates_and_logical_round_trip(mysql_federation, data, mysql_url):
    load_target(mysql_federation, mysql_url, seed=SEED, scale=SCALE)
    offenders = data["BC"]["offenders"]
    status = mysql_federation.sources["BC"].tables["offenders"].columns["status"]
    stored = {r[0] for r in _mysql_query(mysql_url, "SELECT DISTINCT CLIENT_STAT_CD FROM CLIENT")}
    assert stored == {status.reverse_codes[v] for v in offenders.column("status").to_pylist()}
    births = [r[0] for r in _mysql_query(mysql_url, "SELECT BIRTH_DT FROM CLIENT")]
    assert "1988/02/29" in births
    assert all(re.fullmatch(r"\d{4}/\d\d/\d\d", v) for v in births if v is not None)
    yt_births = [r[0] for r in _mysql_query(mysql_url, "SELECT DOB FROM OFFENDER_FILE")]
    assert dt.date(1988, 2, 29) in yt_births
    assert all(v is None or type(v) is dt.date for v in yt_births)
    for code in ("BC", "YT"):
        for name, table in data[code].items():
            back = read_mysql(mysql_url, mysql_federation, code, name)
            assert ordered(back).equals(ordered(table)), (code, name)


def test_mysql_reload_is_idempotent(mysql_federation, data, mysql_url):
    first = load_target(mysql_federation, mysql_url, seed=SEED, scale=SCALE, sources=["BC"])
    conn = _mysql_connect(MYSQL, urlsplit(mysql_url).path.lstrip("/"))
    try:
        conn.cursor().execute("INSERT INTO CAUTION_FLAG (CS_NUMBER) VALUES ('stray')")
        conn.commit()
    finally:
        conn.close()
    second = load_target(mysql_federation, mysql_url, seed=SEED, scale=SCALE, sources=["BC"])
    assert first == second == {"BC": counts_of(data["BC"])}
    for name, mapping in mysql_federation.sources["BC"].tables.items():
        ((count,),) = _mysql_query(mysql_url, f"SELECT COUNT(*) FROM `{mapping.physical_table}`")
        assert count == data["BC"][name].num_rows, name
    ((rows, distinct),) = _mysql_query(
        mysql_url, "SELECT COUNT(*), COUNT(DISTINCT CS_NUMBER) FROM CLIENT"
    )
    assert rows == distinct


def test_mysql_accented_names_round_trip_exactly(mysql_federation, data, mysql_url):
    load_target(mysql_federation, mysql_url, seed=SEED, scale=SCALE, sources=["BC"])
    offenders = data["BC"]["offenders"]
    expected = sorted(
        zip(
            offenders.column("surname").to_pylist(),
            offenders.column("given_names").to_pylist(),
            strict=True,
        ),
        key=repr,
    )
    stored = sorted(_mysql_query(mysql_url, "SELECT LAST_NAME, FIRST_NAMES FROM CLIENT"), key=repr)
    assert stored == expected
    accented = [s for s, _ in expected if s and fold(s) != s.upper() and s.isalpha()]
    assert accented, "BC's data holds accented surnames"
    # The collation is case- and accent-insensitive, as a real system's would be:
    # the adapter, not the database, must keep exact comparisons exact.
    name = accented[0]
    ((count,),) = _mysql_query(
        mysql_url, "SELECT COUNT(*) FROM CLIENT WHERE LAST_NAME = %s", (fold(name),)
    )
    assert count == sum(1 for s, _ in expected if s and fold(s) == fold(name))
    assert count >= 1


def test_mysql_tricky_text_and_too_long_values(mysql_federation, data, mysql_url):
    load_target(mysql_federation, mysql_url, seed=SEED, scale=SCALE, sources=["BC"])
    tables = dict(data["BC"])
    offenders = tables["offenders"]
    surnames = offenders.column("surname").to_pylist()
    tricky = [*TRICKY, "nul\0byte"]
    surnames[: len(tricky)] = tricky
    i = offenders.schema.get_field_index("surname")
    tables["offenders"] = offenders.set_column(i, "surname", pa.array(surnames, pa.string()))
    counts = write_mysql(mysql_federation, "BC", tables, mysql_url)
    assert counts == counts_of(tables)
    back = read_mysql(mysql_url, mysql_federation, "BC", "offenders")
    assert ordered(back).equals(ordered(tables["offenders"]))
    # a value longer than its column: refused before any table is touched
    surnames[0] = "x" * 256
    tables["offenders"] = offenders.set_column(i, "surname", pa.array(surnames, pa.string()))
    with pytest.raises(
        ValueError,
        match=r"BC\.offenders\.surname.*256 characters.*"
        r"CLIENT\.LAST_NAME VARCHAR\(255\)",
    ):
        write_mysql(mysql_federation, "BC", tables, mysql_url)
    ((count,),) = _mysql_query(
        mysql_url, "SELECT COUNT(*) FROM CLIENT WHERE LAST_NAME = %s", (TRICKY[0],)
    )
    assert count == 1
