"""Parse and validate: one read-only statement over the catalog, nothing else."""

from __future__ import annotations

import pytest

from accord.errors import InvalidQuery
from broker.validate import parse_query

CATALOG = {"offenders", "sentences", "releases", "alerts"}


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELEC * FROM offenders", "syntax error"),
        ("SELECT * FROM offenders WHERE", "syntax error"),
        ("", "no SQL statement"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("SELECT * FROM offenders; DROP TABLE offenders", "exactly one statement"),
        ("INSERT INTO offenders VALUES (1)", "not INSERT"),
        ("UPDATE offenders SET surname = 'x'", "not UPDATE"),
        ("DELETE FROM offenders", "not DELETE"),
        ("CREATE TABLE x AS SELECT * FROM offenders", "not CREATE"),
        ("DROP TABLE offenders", "not DROP"),
        ("ALTER TABLE offenders ADD COLUMN x INT", "not ALTER"),
        ("ATTACH '/tmp/x.db' AS x", "not ATTACH"),
        ("COPY offenders TO '/tmp/out.csv'", "not COPY"),
        ("PRAGMA database_list", "not PRAGMA"),
        ("SET enable_external_access = true", "not SET"),
        ("INSTALL httpfs", "not INSTALL"),
        ("LOAD httpfs", "LOAD command"),
        ("CALL duckdb_tables()", "CALL command"),
        ("DESCRIBE offenders", "not DESCRIBE"),
        ("SELECT * FROM read_csv('/etc/passwd')", "READ_CSV"),
        ("SELECT * FROM read_parquet('x.parquet')", "not allowed"),
        ("SELECT * FROM '/etc/passwd'", "unknown table"),
        ("SELECT * FROM 'offenders.csv'", "unknown table"),
        ("SELECT * FROM duckdb_tables()", "not allowed"),
        ("SELECT * FROM generate_series(1, 10)", "not allowed"),
        ("SELECT * FROM information_schema.tables", "qualified"),
        ("SELECT * FROM main.offenders", "qualified"),
        ("SELECT * FROM pg_catalog.pg_tables", "qualified"),
        ("SELECT * FROM sqlite_master", "unknown table"),
        ("SELECT * FROM health_notes", "unknown table"),
        ("SELECT getenv('HOME')", "getenv"),
        ("SELECT current_setting('threads')", "current_setting"),
        ("SELECT * FROM offenders o, LATERAL (SELECT 1)", "LATERAL"),
        ("SELECT * INTO x FROM offenders", "INTO"),
        ("SELECT * FROM offenders FOR UPDATE", "FOR UPDATE"),
        ("SELECT * FROM offenders WHERE surname = $1", "parameters"),
        ("SELECT * FROM unnest([1, 2])", "UNNEST"),
        ("SELECT * FROM \u043effenders", "unknown table"),  # Cyrillic o, a look-alike
    ],
)
def test_refused_with_a_message_naming_the_problem(sql, message):
    with pytest.raises(InvalidQuery) as caught:
        parse_query(sql, CATALOG)
    assert message.lower() in str(caught.value).lower()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM offenders",
        "select surname from OFFENDERS",
        'SELECT "SURNAME" FROM "Offenders"',
        "FROM offenders",
        "WITH x AS (SELECT * FROM offenders) SELECT * FROM x",
        "SELECT fps_number FROM offenders UNION SELECT fps_number FROM sentences",
        "SELECT fps_number FROM offenders EXCEPT SELECT fps_number FROM alerts",
        "SELECT * FROM offenders o WHERE EXISTS "
        "(SELECT 1 FROM alerts a WHERE a.fps_number = o.fps_number)",
        "SELECT count(*), count(DISTINCT fps_number) FROM offenders /* a comment */",
        "SELECT upper(surname), strip_accents(surname), year(birth_date) FROM offenders",
        "SELECT surname, row_number() OVER (PARTITION BY source ORDER BY surname) FROM offenders",
        "SELECT CASE WHEN status = 'UAL' THEN 1 ELSE 0 END FROM offenders -- trailing comment",
    ],
)
def test_read_only_queries_are_accepted(sql):
    parse_query(sql, CATALOG)


def test_identifiers_are_normalized_as_duckdb_resolves_them():
    tree = parse_query('SELECT "SURNAME" FROM "OFFENDERS"', CATALOG)
    assert tree.sql(dialect="duckdb") == 'SELECT "surname" FROM "offenders"'


def test_cte_names_resolve_before_the_catalog():
    parse_query("WITH secret AS (SELECT 1 AS a) SELECT * FROM secret", CATALOG)
    with pytest.raises(InvalidQuery, match="unknown table 'secret'"):
        parse_query("WITH x AS (SELECT * FROM secret) SELECT * FROM x", CATALOG)


def test_overlong_sql_is_refused():
    with pytest.raises(InvalidQuery, match="longer than"):
        parse_query("SELECT " + "1 + " * 40_000 + "1", CATALOG)
