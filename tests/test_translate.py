"""The adapter's logical-to-physical translation: only faithful pushdown."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from accord.errors import InvalidQuery
from accord.federation import ColumnMapping, LogicalTable, TableMapping
from adapters.dialects import RULES
from adapters.translate import Untranslatable, _Translator, plan_scan

if TYPE_CHECKING:
    from collections.abc import Sequence

    from accord.federation import Federation
    from adapters.translate import PhysicalScan


@pytest.fixture
def bc(small_federation: Federation) -> tuple[LogicalTable, TableMapping]:
    return small_federation.tables["offenders"], small_federation.sources["BC"].tables["offenders"]


def scan(
    bc: tuple[LogicalTable, TableMapping],
    predicate: str,
    columns: Sequence[str] = ("fps_number",),
    limit: int = 0,
) -> PhysicalScan:
    table, mapping = bc
    return plan_scan(table, mapping, list(columns), predicate, limit, "sqlite")


def test_renames_and_quotes_physical_names(bc):
    s = scan(bc, "", ["surname", "fps_number", "photo_ref"])
    assert s.sql == 'SELECT "LAST_NM", "FPS_NUM", NULL FROM "CLIENT"'
    assert s.params == []


def test_codes_translate_through_the_mapping(bc):
    s = scan(bc, "status = 'IN_CUSTODY'")
    # CU reads as IN_CUSTODY; a code the mapping does not know reads as NULL
    # (adapters.convert), so the comparison is NULL there too.
    assert s.sql.endswith('WHERE CASE WHEN "STAT_CD" IN (?, ?) THEN "STAT_CD" IN (?) END')
    assert s.params == ["CU", "CO", "CU"]


def test_a_value_no_code_reads_as_matches_no_row(bc):
    # 'UAL' has no code in CORNET, and an unknown stored code reads as NULL:
    # no row reads as 'UAL'. 'CU' is a physical code that reads as IN_CUSTODY.
    for value in ("UAL", "CU"):
        assert scan(bc, f"status = '{value}'").sql.endswith(
            'WHERE CASE WHEN "STAT_CD" IN (?, ?) THEN FALSE END'
        )


def test_not_equal_on_codes_keeps_null_semantics(bc):
    s = scan(bc, "status <> 'SUPERVISED'")
    assert s.sql.endswith('WHERE CASE WHEN "STAT_CD" IN (?, ?) THEN NOT "STAT_CD" IN (?) END')
    assert s.params == ["CU", "CO", "CO"]


def test_range_on_codes_is_left_to_the_broker(bc):
    s = scan(bc, "status > 'A' AND surname = 'Côté'", limit=5)
    assert s.residual == ["status > 'A'"]
    assert s.pushed == ["surname = 'Côté'"]
    assert s.params == ["Côté"]
    assert not s.limit_pushed and "LIMIT" not in s.sql


def test_dates_are_formatted_like_the_source(bc):
    s = scan(bc, "birth_date = DATE '1980-12-31'")
    assert s.params == ["31/12/1980"]


def test_ranges_on_unsortable_date_text_narrow_on_a_sortable_key(bc):
    """DD/MM/YYYY text does not sort as its dates: the range compares the
    year, month and day digits in that order, and text not as the format
    prints it is sent anyway; the broker judges (a superset, no LIMIT)."""
    s = scan(bc, "birth_date > DATE '1980-01-01'")
    assert s.superset == ["birth_date > CAST('1980-01-01' AS DATE)"] and not s.residual
    assert not s.limit_pushed
    assert s.params == ["19800101", "[0-9][0-9]/[0-9][0-9]/[0-9][0-9][0-9][0-9]"]
    key = " || ".join(f'SUBSTRING("BIRTH_DT", {p})' for p in ("7, 4", "4, 2", "1, 2"))
    assert f'({key} > ?) OR NOT ("BIRTH_DT" GLOB ?)' in s.sql


def test_a_keyed_date_range_goes_after_the_cheaper_conjuncts(bc):
    """It works on every row's text: the database thins the rows first."""
    s = scan(bc, "birth_date > DATE '1980-01-01' AND fps_number = '1234567A'")
    assert s.sql.index("GLOB") > s.sql.index('"FPS_NUM" = ?')
    assert s.params == ["1234567A", "19800101", "[0-9][0-9]/[0-9][0-9]/[0-9][0-9][0-9][0-9]"]


@pytest.mark.parametrize(
    ("dialect", "check"),
    [
        ("postgres", 'COLLATE "C" ~ %s'),  # a regular expression, bytewise
        ("mysql", "CHAR_LENGTH(`BIRTH_DT`) = 10 AND HEX(SUBSTRING(`BIRTH_DT`, 7, 1))"),
    ],
)
def test_each_database_checks_the_layout_its_own_way(bc, dialect, check):
    table, mapping = bc
    s = plan_scan(table, mapping, ["fps_number"], "birth_date > DATE '1980-01-01'", 0, dialect)
    assert check in s.sql and s.superset


def test_a_negated_range_on_unsortable_date_text_stays_in_the_broker(bc):
    s = scan(bc, "NOT birth_date > DATE '1980-01-01'")
    assert s.residual and not s.pushed and not s.superset


@pytest.mark.parametrize(
    ("fmt", "layout"),
    [
        ("%d/%m/%Y", ((7, 4), (4, 2), (1, 2), 10, "//")),
        ("%m/%d/%Y", ((7, 4), (1, 2), (4, 2), 10, "//")),
        ("%d.%m.%Y", ((7, 4), (4, 2), (1, 2), 10, "..")),
        ("%Y%d%m", ((1, 4), (7, 2), (5, 2), 8, "")),
        ("%d %b %Y", None),
        ("%d/%m/%y", None),
        ("%d/%m", None),
        ("%d/%d/%Y", None),
        ("%dT%m-%Y", None),
    ],
)
def test_date_layouts_of_fixed_width_formats(fmt, layout):
    from adapters.translate import DateLayout, date_layout

    assert date_layout(fmt) == (DateLayout(*layout) if layout else None)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    stored=st.lists(
        st.one_of(
            st.dates().map(lambda d: d.strftime("%d/%m/%Y")),
            st.sampled_from(["1/2/2000", " 1/02/2000", "01/2/2000", "1/12/1999", "31/12/99"]),
            st.sampled_from(["\u0661\u0662/\u0660\u0662/\u0662\u0660\u0660\u0660", "ab/cd/efgh"]),
            st.text("0123456789/ ", max_size=11),
        ),
        max_size=12,
    ),
    low=st.dates(),
    high=st.dates(),
    op=st.sampled_from(["<", "<=", ">", ">=", "BETWEEN"]),
)
def test_a_keyed_date_range_never_drops_a_row_whose_date_is_in_it(stored, low, high, op):
    """On SQLite: every stored text the adapter reads as a date in the range
    passes the pushed condition (what else passes, the broker drops)."""
    import sqlite3

    from adapters.convert import parse_dates

    table = LogicalTable("t", {"d": "DATE"})
    mapping = TableMapping("t", "T", {"d": ColumnMapping("d", "D", date_format="%d/%m/%Y")})
    predicate = (
        f"d BETWEEN DATE '{low}' AND DATE '{high}'" if op == "BETWEEN" else f"d {op} DATE '{low}'"
    )
    s = plan_scan(table, mapping, ["d"], predicate, 0, "sqlite")
    assert s.superset and not s.residual
    con = sqlite3.connect(":memory:")
    con.execute('CREATE TABLE "T" ("D" TEXT)')
    con.executemany('INSERT INTO "T" VALUES (?)', [(v,) for v in stored])
    sent = [row[0] for row in con.execute(s.sql, s.params)]
    parsed = parse_dates(pa.array(stored, pa.string()), "%d/%m/%Y").to_pylist()

    def holds(d: dt.date) -> bool:
        verdict: bool = {
            "<": d < low,
            "<=": d <= low,
            ">": d > low,
            ">=": d >= low,
            "BETWEEN": low <= d <= high,
        }[op]
        return verdict

    wanted = [v for v, d in zip(stored, parsed, strict=True) if d is not None and holds(d)]
    assert sorted(wanted) == sorted(v for v in sent if v in wanted)
    assert len(sent) >= len(wanted)


def test_ranges_on_sortable_date_text_are_pushed(small_federation):
    table = small_federation.tables["sentences"]
    mapping = small_federation.sources["BC"].tables["sentences"]
    s = plan_scan(
        table,
        mapping,
        ["fps_number"],
        "sentence_date BETWEEN '2001-01-01' AND DATE '2001-12-31'",
        0,
        "sqlite",
    )
    assert s.params == ["20010101", "20011231"]
    assert not s.residual


def test_column_not_held_reads_as_null(bc):
    s = scan(bc, "photo_ref IS NULL")
    assert s.sql.endswith("WHERE NULL IS NULL")


def test_mismatched_literal_types_are_not_pushed(bc):
    assert scan(bc, "surname = 5").residual == ["surname = 5"]


def test_like_is_pushed_with_its_pattern_bound(bc):
    s = scan(bc, "surname LIKE 'O''Br%'")
    assert s.params == ["O'Br%"]


def test_limit_pushed_when_everything_was(bc):
    s = scan(bc, "fps_number IN ('1A', '2B') OR surname IS NOT NULL", limit=7)
    assert s.limit_pushed and s.sql.endswith("LIMIT 7")


@pytest.mark.parametrize(
    "predicate",
    [
        "fps_number = (SELECT 1)",
        "upper(surname) = 'X'",
        "read_csv('/etc/passwd') IS NULL",
        "o.surname = 'x'",
        "no_such_column = 1",
        "surname = 'x'; DROP TABLE CLIENT",
    ],
)
def test_non_plain_predicates_are_refused(bc, predicate):
    with pytest.raises(InvalidQuery):
        scan(bc, predicate)


def test_literals_never_reach_the_sql_text(bc):
    s = scan(bc, "surname = 'x'' OR 1=1 --'")
    assert "OR 1=1" not in s.sql
    assert s.params == ["x' OR 1=1 --"]


def test_empty_column_list_is_refused(bc):
    with pytest.raises(InvalidQuery, match="at least one column"):
        scan(bc, "", [])


def test_date_param_type(bc):
    assert isinstance(scan(bc, "birth_date = DATE '2000-01-02'").params[0], str)
    assert dt.date(2000, 1, 2).strftime("%d/%m/%Y") == "02/01/2000"


# --- other databases' comparison rules ---------------------------------------


def test_postgres_compares_text_ranges_bytewise(bc):
    table, mapping = bc
    s = plan_scan(table, mapping, ["surname"], "surname > 'M'", 0, "postgres")
    assert s.sql == 'SELECT "LAST_NM" FROM "CLIENT" WHERE "LAST_NM" COLLATE "C" > %s'
    assert s.pushed == ["surname > 'M'"]


def test_postgres_binds_native_dates(small_federation):
    table = small_federation.tables["offenders"]
    mapping = small_federation.sources["QC"].tables["offenders"]  # DATE_NAISSANCE: no format
    s = plan_scan(table, mapping, ["surname"], "birth_date >= DATE '1980-01-02'", 0, "postgres")
    assert s.params == [dt.date(1980, 1, 2)] and s.pushed


def test_backslash_patterns_stay_in_the_broker_where_it_escapes(bc):
    table, mapping = bc
    predicate = "surname LIKE 'a\\_b%'"
    assert plan_scan(table, mapping, ["surname"], predicate, 0, "sqlite").pushed
    assert plan_scan(table, mapping, ["surname"], predicate, 0, "postgres").residual


def test_case_insensitive_collations_push_supersets_only(bc):
    table, mapping = bc
    s = plan_scan(
        table, mapping, ["surname"], "surname = 'Côté' AND fps_number IS NOT NULL", 5, "mysql"
    )
    assert s.superset == ["surname = 'Côté'"]
    assert s.pushed == ["NOT fps_number IS NULL"]
    assert not s.limit_pushed  # the database may return 'COTE' too: the broker re-checks
    assert "`LAST_NM` = ?" in s.sql


@pytest.mark.parametrize(
    "predicate",
    [
        "surname <> 'Côté'",  # 'COTE' <> 'Côté' is false there: rows would be lost
        "NOT surname = 'Côté'",
        "surname NOT IN ('a', 'b')",
        "status <> 'UAL'",
        "surname > 'M'",
    ],
)
def test_case_insensitive_collations_never_push_what_could_drop_rows(bc, predicate):
    table, mapping = bc
    s = plan_scan(table, mapping, ["surname"], predicate, 0, "mysql")
    assert s.residual and not s.pushed and not s.superset


def test_release_filters_must_be_exact(bc):
    from accord.errors import ConfigError

    table, mapping = bc
    with pytest.raises(ConfigError, match="would match more rows"):
        plan_scan(table, mapping, ["surname"], "", 0, "mysql", release_filter="surname = 'x'")
    with pytest.raises(ConfigError, match="release filter of offenders"):
        plan_scan(
            table, mapping, ["surname"], "", 0, "sqlite", release_filter="upper(surname) = 'X'"
        )


# --- negation and flags: pushed exactly as written, or not at all -----------


def test_not_like_is_pushed_negated(bc):
    s = scan(bc, "surname NOT LIKE 'B%'")
    assert s.sql == 'SELECT "FPS_NUM" FROM "CLIENT" WHERE NOT ("LAST_NM" LIKE ?)'
    assert s.params == ["B%"] and s.pushed == ["surname NOT LIKE 'B%'"]


def test_not_like_under_a_superset_collation_stays_in_the_broker(bc):
    table, mapping = bc
    s = plan_scan(table, mapping, ["surname"], "surname NOT LIKE 'B%'", 0, "mysql")
    assert s.residual == ["surname NOT LIKE 'B%'"] and not s.pushed and not s.superset


def test_not_like_release_filter_withholds_what_it_names(bc):
    table, mapping = bc
    s = plan_scan(
        table, mapping, ["surname"], "", 0, "sqlite", release_filter="surname NOT LIKE 'X%'"
    )
    assert s.sql.endswith('WHERE NOT ("LAST_NM" LIKE ?)') and s.params == ["X%"]


def test_between_symmetric_keeps_both_orders(bc):
    table, mapping = bc
    s = plan_scan(
        table,
        mapping,
        ["surname"],
        "",
        0,
        "sqlite",
        release_filter="surname NOT BETWEEN SYMMETRIC 'N' AND 'M'",
    )
    assert s.sql.endswith('WHERE NOT ("LAST_NM" BETWEEN ? AND ? OR "LAST_NM" BETWEEN ? AND ?)')
    assert s.params == ["N", "M", "M", "N"]


def test_not_ilike_is_not_a_scan_predicate(bc):
    with pytest.raises(InvalidQuery, match="ILIKE"):
        scan(bc, "surname NOT ILIKE 'b%'")


def test_negation_of_a_value_no_row_holds_keeps_nulls_out(bc):
    # 'CU' is a code, so no row reads as 'CU'; but NOT (NULL = 'CU') is NULL, not TRUE
    s = scan(bc, "NOT status = 'CU'")
    assert s.sql.endswith('WHERE NOT (CASE WHEN "STAT_CD" IN (?, ?) THEN FALSE END)')
    s = scan(bc, "NOT status <> 'CU'")
    assert s.sql.endswith('WHERE NOT (CASE WHEN "STAT_CD" IN (?, ?) THEN TRUE END)')


def test_is_null_on_codes_holds_for_unknown_codes_too(bc):
    s = scan(bc, "status IS NULL")
    assert s.sql.endswith('WHERE ("STAT_CD" IS NULL OR NOT "STAT_CD" IN (?, ?))')
    assert s.params == ["CU", "CO"] and s.pushed == ["status IS NULL"]


def test_is_null_on_dates_stored_as_text_stays_in_the_broker(bc):
    # Stored text that is not a date reads as NULL; SQL cannot tell which.
    assert scan(bc, "birth_date IS NULL").residual == ["birth_date IS NULL"]


def test_ranges_on_dates_stored_as_text_only_narrow(small_federation):
    """Stored text that is not a date can fall in a text range yet reads as
    NULL: the database narrows the scan, the broker decides, no LIMIT goes."""
    table = small_federation.tables["offenders"]
    mapping = small_federation.sources["BC"].tables["offenders"]
    held = mapping.columns["birth_date"]
    sortable = replace(
        mapping, columns={**mapping.columns, "birth_date": replace(held, date_format="%Y%m%d")}
    )
    s = plan_scan(table, sortable, ["fps_number"], "birth_date < DATE '1990-01-01'", 5, "sqlite")
    assert s.superset == ["birth_date < CAST('1990-01-01' AS DATE)"] and not s.limit_pushed
    s = plan_scan(table, sortable, ["fps_number"], "birth_date = DATE '1990-01-01'", 5, "sqlite")
    assert s.pushed and s.limit_pushed  # a well-formed date never equals bad text


@pytest.mark.parametrize(
    ("node", "flag"),
    [
        (
            exp.In(
                this=exp.column("surname"), expressions=[exp.Literal.string("a")], is_global=True
            ),
            "is_global",
        ),
        (exp.In(this=exp.column("surname"), field=exp.column("surname")), "field"),
        (exp.Is(this=exp.column("surname"), expression=exp.null(), negate=True), "negate"),
        (
            exp.EQ(this=exp.column("surname"), expression=exp.Literal.string("a"), escape="!"),
            "escape",
        ),
        (
            exp.Like(this=exp.column("surname"), expression=exp.Literal.string("a"), flag=True),
            "flag",
        ),
        (exp.Not(this=exp.column("surname"), extra=True), "extra"),
        (
            exp.EQ(
                this=exp.column("birth_date"),
                expression=exp.Cast(
                    this=exp.Literal.string("2000-01-02"),
                    to=exp.DataType.build("DATE"),
                    format=exp.Literal.string("%Y"),
                ),
            ),
            "format",
        ),
    ],
)
def test_a_flag_the_translator_does_not_reproduce_is_never_pushed(bc, node, flag):
    table, mapping = bc
    with pytest.raises(Untranslatable, match=flag):
        _Translator(table, mapping, RULES["sqlite"]).translate(node)


@pytest.mark.parametrize("literal", ["'18991231'", "TRY_CAST('18991231' AS DATE)", "'2001-W01-1'"])
def test_date_literals_python_reads_otherwise_than_duckdb_stay_in_the_broker(bc, literal):
    # Python's fromisoformat reads '18991231' as a date; DuckDB's TRY_CAST gives NULL
    assert scan(bc, f"NOT birth_date = {literal}").residual


@pytest.mark.parametrize("op", ["OR", "AND"])
def test_a_long_chain_translates_without_recursing(bc, op):
    """A 1,000-term OR crashed the translation with a RecursionError."""
    predicate = f" {op} ".join(f"surname = 's{i}'" for i in range(1000))
    s = scan(bc, predicate)
    assert len(s.params) == 1000 and not s.residual
    assert s.sql.count(f" {op} ") >= 999


def test_too_deep_a_conjunct_is_left_to_the_broker(bc):
    """Nesting the translator would recurse too deeply into stays residual."""
    predicate = "NOT (" * 400 + "surname = 'a'" + ")" * 400
    try:
        s = scan(bc, predicate)
    except InvalidQuery:
        return  # refused outright by the predicate parser: also not a crash
    assert s.residual and not s.pushed
