"""Parse and validate: one read-only statement over the catalog, nothing else."""

from __future__ import annotations

import pytest
from sqlglot import exp

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


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT surname, FROM offenders", "trailing comma"),
        ("SELECT surname,, status FROM offenders", "empty item"),
        ("SELECT surname FROM offenders ORDER BY surname,", "trailing comma"),
        ("SELECT count(surname,) FROM offenders", "trailing comma"),
        ("SELECT status FROM offenders GROUP BY status, ORDER BY status", "trailing comma"),
        ("SELECT FROM offenders", "no output columns"),
        ("SELECT FROM offenders WHERE status = 'UAL'", "no output columns"),
        ("SELECT 1 AS x LIMIT (SELECT count(*) FROM offenders)", "LIMIT takes a whole number"),
        ("SELECT surname FROM offenders LIMIT 1 + 1", "LIMIT takes a whole number"),
        ("SELECT surname FROM offenders LIMIT 10%", "LIMIT takes a whole number"),
        ("SELECT surname FROM offenders OFFSET (SELECT 1)", "OFFSET takes a whole number"),
        (
            "SELECT 1 AS a UNION SELECT 2 ORDER BY (SELECT count(*) FROM offenders)",
            "subquery in the ORDER BY of a UNION operation",
        ),
        (
            "(SELECT 1 AS a EXCEPT SELECT 2 ORDER BY (SELECT count(*) FROM offenders)) "
            "UNION SELECT 3",
            "subquery in the ORDER BY of an EXCEPT operation",
        ),
    ],
)
def test_near_valid_sql_is_refused_with_a_message_naming_the_problem(sql, message):
    with pytest.raises(InvalidQuery) as caught:
        parse_query(sql, CATALOG)
    assert message.lower() in str(caught.value).lower()


SIMILARITY = (
    "jaro_winkler_similarity",
    "jaro_similarity",
    "levenshtein",
    "damerau_levenshtein",
    "jaccard",
    "hamming",
    "mismatches",
    "editdist3",
)


@pytest.mark.parametrize("function", SIMILARITY)
def test_string_similarity_functions_are_allowed(function):
    parse_query(f"SELECT {function}(surname, 'Smith') FROM offenders", CATALOG)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT any_value(surname) FROM offenders",
        "SELECT status, any_value(surname) FROM offenders GROUP BY status",
        "SELECT first_value(surname IGNORE NULLS) OVER (ORDER BY surname) FROM offenders",
        "SELECT surname, status FROM offenders LIMIT 5 OFFSET 2",
        "SELECT 'a,' AS comma, surname FROM offenders",
        "WITH offenders AS (SELECT 1 AS a) SELECT offenders.a FROM offenders",
    ],
)
def test_safe_forms_are_accepted(sql):
    parse_query(sql, CATALOG)


def test_a_cte_named_like_a_table_is_renamed_so_nothing_else_binds_to_it():
    """A row filter's subquery names raw tables; a caller's CTE of the same
    name must not capture it, so the CTE gets a name callers cannot use."""
    tree = parse_query(
        "WITH offenders(a) AS (SELECT 1) SELECT offenders.a, o.a FROM offenders, offenders o",
        CATALOG,
        known_tables={"aliases"},
    )
    names = {t.name for t in tree.find_all(exp.Table)}
    assert names == {"__accord_cte_offenders"}
    assert [c.alias_or_name for c in tree.args["with_"].expressions] == ["__accord_cte_offenders"]
    assert [t.alias_or_name for t in tree.find_all(exp.Table)] == ["offenders", "o"]
