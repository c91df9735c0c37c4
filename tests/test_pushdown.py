"""The planner's pushdown (constant folding, OR-splitting, shared scans,
shard pruning) never changes an answer, and it happens.

Each proof is by difference on DuckDB: the folded literal is the value
DuckDB computes for the expression; a query answered the broker's way
(``tests.test_planner.brokered``: each scan applies its pushed predicate per
source, the merge runs over the results) equals the same query over the
union of the sources' data; a source the shard metadata skips holds no row
the predicate keeps.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, event, example, given, reject, settings
from hypothesis import strategies as st
from sqlglot import exp

from accord.errors import ConfigError
from accord.federation import KeyDomain, parse_federation
from accord.predicate import is_plain
from broker.planner import plan_query
from broker.pushdown.folding import fold_constants
from broker.pushdown.shards import may_match
from broker.validate import parse_query
from tests.conftest import load_logical_model
from tests.test_planner import brokered, direct, logical_tables

_DUCKDB = duckdb.connect()
UNITS = ["DAY", "WEEK", "MONTH", "QUARTER", "YEAR"]


def duckdb_value(sql: str) -> Any:
    return _DUCKDB.execute(f"SELECT {sql}").fetchall()[0][0]


# --- constant folding ----------------------------------------------------------


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    day=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31)),
    steps=st.lists(
        st.tuples(st.sampled_from("+-"), st.integers(-400, 400), st.sampled_from(UNITS)),
        min_size=1,
        max_size=3,
    ),
)
def test_a_date_moved_by_intervals_folds_to_duckdbs_date(day, steps):
    sql = f"DATE '{day.isoformat()}'" + "".join(
        f" {sign} INTERVAL '{n}' {unit}" for sign, n, unit in steps
    )
    folded = fold_constants(sqlglot.parse_one(sql, read="duckdb"))
    assert isinstance(folded, exp.Cast) and is_plain(folded), folded.sql()
    moved = duckdb_value(sql)
    assert moved == dt.datetime.combine(duckdb_value(folded.sql(dialect="duckdb")), dt.time())


numbers = st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False).map(
    lambda d: str(d.normalize()) if d == d.to_integral() else str(d)
)


@st.composite
def arithmetic(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 2 or draw(st.booleans()):
        return draw(numbers)
    op = draw(st.sampled_from(["+", "-", "*"]))
    return f"({draw(arithmetic(depth + 1))} {op} {draw(arithmetic(depth + 1))})"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(sql=arithmetic())
@example(sql="(((0 + 0.138) * 0.138) * (1.801 * (57.112 * 510.506)))")  # DuckDB overflows
def test_numeric_arithmetic_folds_to_duckdbs_value_exactly(sql):
    folded = fold_constants(sqlglot.parse_one(f"x < {sql}", read="duckdb")).expression
    event("folded" if folded.find(exp.Add, exp.Sub, exp.Mul) is None else "left as it was")
    text = folded.sql(dialect="duckdb")
    # Equal as DuckDB computes both (its DECIMAL is exact), and as the
    # DOUBLE a column would compare them as; where DuckDB's DECIMAL
    # overflows instead, the query fails whatever was pushed.
    try:
        same = duckdb_value(f"({sql}) = ({text})")
        same_double = duckdb_value(f"CAST(({sql}) AS DOUBLE) = CAST(({text}) AS DOUBLE)")
    except duckdb.OutOfRangeException:
        reject()
    assert same and same_double


@pytest.mark.parametrize(
    ("sql", "kept"),
    [
        ("x < 1 / 3", "x < 1 / 3"),  # division is not exact: left alone
        ("x < 1e3 * 2", "x < 1e3 * 2"),  # exponent notation is DOUBLE in DuckDB
        ("x < DATE '1994-01-01' + INTERVAL '5' HOUR", "INTERVAL '5' HOUR"),  # a timestamp
        ("x < DATE '1994-02-30' + INTERVAL '1' DAY", "'1994-02-30'"),  # DuckDB errors
    ],
)
def test_what_is_not_exact_is_left_as_it_was(sql, kept):
    assert kept in fold_constants(sqlglot.parse_one(sql, read="duckdb")).sql(dialect="duckdb")


# --- the planner, by difference ----------------------------------------------------

ALIASES = ["a", "b"]


@st.composite
def atoms(draw: st.DrawFn) -> str:
    alias = draw(st.sampled_from(ALIASES))
    day = draw(st.dates(min_value=dt.date(1970, 1, 1), max_value=dt.date(2005, 1, 1)))
    n, unit = draw(st.integers(-30, 30)), draw(st.sampled_from(UNITS))
    op = draw(st.sampled_from(["<", "<=", ">", ">=", "=", "<>"]))
    return draw(
        st.sampled_from(
            [
                f"{alias}.birth_date {op} DATE '{day}' + INTERVAL '{n}' {unit}",
                f"{alias}.status = 'UAL'",
                f"{alias}.status IS NULL",
                f"{alias}.surname LIKE '%o%'",
                f"upper({alias}.surname) = 'SMITH'",  # never pushed
                f"length({alias}.surname) {op} 2 + 3",
                f"{alias}.source = 'QC'",
            ]
        )
    )


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 2 or draw(st.integers(0, 2)) == 0:
        return draw(atoms())
    op = draw(st.sampled_from(["AND", "OR"]))
    return f"({draw(conditions(depth + 1))} {op} {draw(conditions(depth + 1))})"


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(where=conditions(), join=st.sampled_from(["JOIN", "LEFT JOIN"]))
def test_a_self_join_is_answered_as_directly(small_federation, where, join):
    sql = (
        f"SELECT a.fps_number, a.surname, b.surname FROM offenders a {join} offenders b "
        f"ON a.fps_number = b.fps_number WHERE {where} ORDER BY ALL"
    )
    data = logical_tables(small_federation)
    got, plan = brokered(sql, small_federation, data)
    shared = [r for r in plan.references if r.scans]
    event(f"{len(shared)} reference(s) with scans")
    event(f"scans pushing a predicate: {sum(bool(s.predicate) for r in shared for s in r.scans)}")
    assert got == direct(sql, small_federation, data)


def test_constants_are_folded_into_the_pushed_predicate(small_federation):
    sql = (
        "SELECT s.fps_number FROM sentences s JOIN offenders o ON s.fps_number = o.fps_number "
        "WHERE o.birth_date < DATE '1980-01-01' + INTERVAL '1' YEAR AND s.length_days > 0.5 * 2"
    )
    plan = plan_query(parse_query(sql, small_federation.tables), small_federation)
    assert {r.alias: r.predicate for r in plan.references} == {
        "o": "(birth_date < CAST('1981-01-01' AS DATE))",
        "s": "(length_days > 1.0)",
    }
    assert "INTERVAL '1' YEAR" in plan.merge_sql  # the merge keeps the caller's own


def test_an_or_across_tables_pushes_its_disjunction_per_table(small_federation):
    sql = (
        "SELECT o.surname FROM offenders o JOIN sentences s ON o.fps_number = s.fps_number "
        "WHERE (o.status = 'UAL' AND s.length_days > 2 * 5) OR (o.status = 'IN_CUSTODY' "
        "AND s.length_days < 3 AND upper(o.surname) = 'X')"
    )
    plan = plan_query(parse_query(sql, small_federation.tables), small_federation)
    refs = {r.alias: r for r in plan.references}
    assert refs["o"].predicate == "(status = 'UAL' OR status = 'IN_CUSTODY')"
    assert refs["s"].predicate == "(length_days > 10 OR length_days < 3)"
    assert not any(p.exact for r in plan.references for p in r.predicates)
    # A branch that says nothing of a table implies nothing for it.
    sql = sql.replace("AND s.length_days < 3 ", "")
    plan = plan_query(parse_query(sql, small_federation.tables), small_federation)
    assert {r.alias: r.predicate for r in plan.references}["s"] == ""


def test_an_implied_predicate_takes_no_limit_with_it(small_federation):
    sql = "SELECT surname FROM offenders WHERE status = 'UAL' OR upper(surname) = 'X' LIMIT 2"
    plan = plan_query(parse_query(sql, small_federation.tables), small_federation)
    assert [r.limit for r in plan.references] == [0]
    sql = (
        "SELECT surname FROM offenders WHERE (status = 'UAL' AND upper(surname) = 'X') "
        "OR status = 'UAL' LIMIT 2"
    )
    plan = plan_query(parse_query(sql, small_federation.tables), small_federation)
    assert plan.references[0].predicate == "(status = 'UAL' OR status = 'UAL')"
    assert all(s.limit == 0 for s in plan.references[0].scans)


def test_references_to_one_table_share_one_scan_per_source(small_federation):
    sql = (
        "SELECT a.surname FROM offenders a JOIN offenders b ON a.fps_number = b.fps_number "
        "JOIN offenders c ON c.fps_number = a.fps_number "
        "WHERE a.status = 'UAL' AND b.birth_date > DATE '1979-01-01' AND c.status = 'UAL'"
    )
    plan = plan_query(parse_query(sql, small_federation.tables), small_federation)
    first, *others = plan.references
    assert [(r.scans, r.sources) for r in others] == [([], []), ([], [])]
    specs = {s.source: s for s in first.scans}
    assert set(specs) == {"BC", "QC"}
    assert specs["BC"].predicate == (
        "((status = 'UAL') OR (birth_date > CAST('1979-01-01' AS DATE)))"
    )
    assert specs["BC"].columns == ["fps_number", "surname", "birth_date", "status"]
    assert specs["QC"].predicate == ""  # QC does not release birth_date: b takes every row
    assert plan.merge_sql.count('"ref1"') == 3 and '"ref2"' not in plan.merge_sql
    data = logical_tables(small_federation)
    assert brokered(sql, small_federation, data)[0] == direct(sql, small_federation, data)


def test_conjuncts_every_reference_pushes_stay_outside_the_or(small_federation):
    sql = (
        "SELECT a.surname FROM offenders a JOIN offenders b ON a.fps_number = b.fps_number "
        "WHERE a.status = 'UAL' AND b.status = 'UAL' AND a.surname LIKE 'C%'"
    )
    plan = plan_query(parse_query(sql, small_federation.tables), small_federation)
    bc = next(s for s in plan.references[0].scans if s.source == "BC")
    assert bc.predicate == "(status = 'UAL')"  # b pushes nothing else: no OR at all


# --- shard metadata ----------------------------------------------------------------


def sharded_federation(shards: dict[str, Any]) -> Any:
    model = load_logical_model()
    return parse_federation(
        {
            "logical_model": model,
            "sources": [
                {
                    "code": code,
                    "backend": {"kind": "sqlite", "path": f"{code}.sqlite"},
                    "tables": {"sentences": {}},
                    "release": {"sentences": "all"},
                    **({"shards": {"sentences": shard}} if shard is not None else {}),
                }
                for code, shard in shards.items()
            ],
        }
    )


def test_shards_are_read_from_the_federation_file():
    fed = sharded_federation(
        {
            "LOW": {"length_days": {"max": 99}, "sentence_date": {"min": "2000-01-01"}},
            "HIGH": {"length_days": {"min": 100}, "sentence_type": {"values": ["A", "B"]}},
        }
    )
    assert fed.sources["LOW"].shards["sentences"]["length_days"] == KeyDomain(
        "length_days", None, 99
    )
    assert fed.sources["LOW"].shards["sentences"]["sentence_date"].minimum == dt.date(2000, 1, 1)
    assert fed.sources["HIGH"].shards["sentences"]["sentence_type"].values == {"A", "B"}


@pytest.mark.parametrize(
    ("shard", "message"),
    [
        ({"nope": {"min": 1}}, "'nope' is not a column"),
        ({"length_days": {"min": 5, "max": 1}}, "min 5 is above max 1"),
        ({"length_days": {"min": "x"}}, "'x' is not a BIGINT value"),
        ({"length_days": {"min": True}}, "is not a BIGINT value"),
        ({"length_days": {}}, "give min and/or max, or values"),
        ({"length_days": {"values": []}}, "values is empty"),
        ({"length_days": {"values": [1], "min": 0}}, "not both"),
        ({"length_days": {"low": 1}}, "unknown keys"),
        ({"sentence_date": {"max": "2000-13-01"}}, "is not a DATE value"),
        ({"sentence_type": {"values": [1]}}, "is not a VARCHAR value"),
    ],
)
def test_bad_shards_are_refused_when_the_file_is_loaded(shard, message):
    with pytest.raises(ConfigError, match=message):
        sharded_federation({"ONE": shard})


def test_shards_name_only_tables_the_source_serves():
    with pytest.raises(ConfigError, match="table 'offenders' is not served"):
        parse_federation(
            {
                "logical_model": load_logical_model(),
                "sources": [
                    {
                        "code": "ONE",
                        "backend": {"kind": "sqlite", "path": "one.sqlite"},
                        "tables": {"sentences": {}},
                        "release": {"sentences": "all"},
                        "shards": {"offenders": {"fps_number": {"values": ["1"]}}},
                    }
                ],
            }
        )


@st.composite
def key_predicates(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 2 or draw(st.booleans()):
        n, m = draw(st.integers(-5, 25)), draw(st.integers(-5, 25))
        return draw(
            st.sampled_from(
                [
                    f"k {draw(st.sampled_from(['<', '<=', '>', '>=', '=']))} {n}",
                    f"{n} {draw(st.sampled_from(['<', '<=', '>', '>=', '=']))} k",
                    f"k BETWEEN {n} AND {m}",
                    f"k IN ({n}, {m})",
                    f"k = {n}.5",
                    f"k <> {n}",
                    f"NOT k = {n}",
                    "k IS NULL",
                ]
            )
        )
    op = draw(st.sampled_from(["AND", "OR"]))
    return f"({draw(key_predicates(depth + 1))} {op} {draw(key_predicates(depth + 1))})"


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    bounds=st.tuples(st.integers(0, 20), st.integers(0, 20)).map(sorted),
    listed=st.booleans(),
    keys=st.lists(st.integers(0, 20), min_size=1, max_size=8),
    predicate=key_predicates(),
)
def test_a_skipped_shard_holds_no_row_the_predicate_keeps(bounds, listed, keys, predicate):
    low, high = bounds
    rows = [k for k in keys if low <= k <= high] or [low]
    domain = KeyDomain("k", values=frozenset(rows)) if listed else KeyDomain("k", low, high)
    matching = _DUCKDB.sql(
        f"SELECT count(*) FROM (SELECT unnest([{', '.join(map(str, rows))}, NULL]) AS k) "
        f"WHERE {predicate}"
    ).fetchall()[0][0]
    skipped = not may_match([predicate], {"k": domain})
    event("skipped" if skipped else "asked")
    if skipped:
        assert matching == 0


def test_the_planner_skips_a_shard_that_cannot_match():
    fed = sharded_federation(
        {"LOW": {"length_days": {"max": 99}}, "HIGH": {"length_days": {"min": 100}}, "ANY": None}
    )

    def asked(where: str) -> list[str]:
        sql = f"SELECT fps_number FROM sentences WHERE {where}"
        return plan_query(parse_query(sql, fed.tables), fed).references[0].sources

    assert asked("length_days > 50 + 50") == ["HIGH", "ANY"]
    assert asked("length_days BETWEEN 10 AND 20") == ["LOW", "ANY"]
    assert asked("length_days = 5 OR length_days = 500") == ["LOW", "HIGH", "ANY"]
    assert asked("length_days IN (1, 2)") == ["LOW", "ANY"]
    assert asked("length_days <> 5") == ["LOW", "HIGH", "ANY"]
    assert asked("upper(fps_number) = 'X'") == ["LOW", "HIGH", "ANY"]


def test_shard_values_compare_as_duckdb_compares_them():
    # 0.30000000000000003 is below the bound, but as a double it is the bound.
    floor = 0.30000000000000004
    doubles = {"k": KeyDomain("k", minimum=floor)}
    assert duckdb_value(f"CAST({floor!r} AS DOUBLE) <= 0.30000000000000003")
    assert may_match(["k <= 0.30000000000000003"], doubles)
    assert not may_match(["k < 0.3"], doubles)
    integers = {"k": KeyDomain("k", minimum=1)}  # BIGINT against a decimal: exact
    assert not may_match(["k <= 0.99999999999999999999"], integers)
    assert not duckdb_value("CAST(1 AS BIGINT) <= 0.99999999999999999999")


def test_the_tpch_federation_declares_its_shards():
    from accord.federation import load_federation
    from tests.integration.test_tpch import FEDERATION

    fed = load_federation(FEDERATION)
    lines = {code: s.shards["lineitem"]["l_orderkey"] for code, s in fed.sources.items()}
    assert (lines["ORDERDESK"].maximum, lines["WAREHOUSE"].minimum) == (19999, 20000)
    assert (lines["WAREHOUSE"].maximum, lines["ARCHIVE"].minimum) == (39999, 40000)


def test_exists_fetches_no_column_for_its_star(small_federation):
    sql = (
        "SELECT o.surname FROM offenders o WHERE EXISTS (SELECT * FROM sentences s "
        "WHERE s.fps_number = o.fps_number AND s.length_days > 50) ORDER BY 1"
    )
    plan = plan_query(parse_query(sql, small_federation.tables), small_federation)
    assert {r.alias: r.columns for r in plan.references}["s"] == ["fps_number", "length_days"]
    data = logical_tables(small_federation)
    assert brokered(sql, small_federation, data)[0] == direct(sql, small_federation, data)
    # One row even over none: such a projection stays.
    sql = "SELECT count(*) FROM offenders WHERE EXISTS (SELECT max(length_days) FROM sentences)"
    plan = plan_query(parse_query(sql, small_federation.tables), small_federation)
    assert "MAX(" in plan.merge_sql
