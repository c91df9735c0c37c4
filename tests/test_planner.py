"""The planner: pushdown never changes an answer.

Each query is answered twice on DuckDB: once directly over the union of the
sources' logical data, and once the broker's way (each reference's scan
applies its pushed predicate and limit per source, then the merge query runs
over the results). The two answers must be identical.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pytest

from app.render import table_rows
from broker.merge import Merger
from broker.planner import plan_query
from broker.validate import parse_query

if TYPE_CHECKING:
    from accord.federation import Federation
    from broker.planner import QueryPlan

#: (source code, logical table) -> that source's rows of the table
Data = dict[tuple[str, str], pa.Table]

D = dt.date
OFFENDERS: dict[str, list[tuple[object, ...]]] = {
    "BC": [
        ("1A", "Côté", D(1980, 1, 2), "IN_CUSTODY"),
        ("2B", "O'Brien", D(1990, 5, 6), "UAL"),
        (None, "Smith", D(1975, 3, 4), "SUPERVISED"),
    ],
    "QC": [
        ("1A", "Cote", D(1980, 1, 2), None),
        ("3C", "Lévesque", D(2001, 7, 8), "UAL"),
        ("4D", "Gagné", None, "SUPERVISED"),
    ],
}
SENTENCES: dict[str, list[tuple[object, ...]]] = {
    "BC": [("1A", 100), ("1A", 700), ("2B", 30), ("9Z", 5)]
}


def logical_tables(federation: Federation) -> Data:
    data: Data = {}
    for code, source in federation.sources.items():
        for name in source.tables:
            schema = federation.tables[name].arrow_schema()
            rows = {"offenders": OFFENDERS, "sentences": SENTENCES}[name].get(code, [])
            keys = (
                ["fps_number", "surname", "birth_date", "status"]
                if name == "offenders"
                else ["fps_number", "length_days"]
            )
            pylist = [
                {**{f.name: None for f in schema}, **dict(zip(keys, r, strict=True))} for r in rows
            ]
            held = source.tables[name].columns
            released = source.released_columns(name)
            pylist = [
                {k: (v if k in held and k in released else None) for k, v in row.items()}
                for row in pylist
            ]
            data[(code, name)] = pa.Table.from_pylist(pylist, schema=schema)
    return data


def direct(sql: str, federation: Federation, data: Data) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    for name in federation.tables:
        parts = [
            t.append_column("source", pa.array([code] * t.num_rows, pa.string()))
            for (code, n), t in data.items()
            if n == name
        ]
        if parts:
            con.register(name, pa.concat_tables(parts))
    rows: list[tuple[Any, ...]] = con.sql(sql).fetchall()
    return rows


def brokered(
    sql: str, federation: Federation, data: Data
) -> tuple[list[tuple[Any, ...]], QueryPlan]:
    plan = plan_query(parse_query(sql, federation.tables), federation)
    scan = duckdb.connect()
    tables: dict[str, pa.Table] = {}
    for ref in plan.references:
        parts = []
        for spec in ref.scans:
            scan.register("t", data[(spec.source, ref.table)])
            where = f" WHERE {spec.predicate}" if spec.predicate else ""
            limit = f" LIMIT {spec.limit}" if spec.limit else ""
            types = federation.tables[ref.table].columns
            cols = ", ".join(
                f'"{c}"' if c in spec.columns else f'NULL::{types[c]} AS "{c}"' for c in ref.columns
            )
            part = scan.sql(f"SELECT {cols} FROM t{where}{limit}").to_arrow_table()
            parts.append(
                part.append_column("source", pa.array([spec.source] * part.num_rows, pa.string()))
            )
            scan.unregister("t")
        schema = (
            federation.tables[ref.table]
            .arrow_schema(ref.columns)
            .append(pa.field("source", pa.string()))
        )
        tables[ref.ref_id] = pa.concat_tables(parts) if parts else schema.empty_table()
    return table_rows(Merger(federation).run(plan, tables)[0]), plan


QUERIES = [
    "SELECT surname FROM offenders WHERE status = 'UAL' ORDER BY surname",
    "SELECT * FROM offenders WHERE birth_date > DATE '1979-01-01' ORDER BY ALL",
    "SELECT source, count(*) FROM offenders GROUP BY source ORDER BY source",
    "SELECT o.surname, s.length_days FROM offenders o JOIN sentences s "
    "ON o.fps_number = s.fps_number WHERE s.length_days > 50 AND o.source = 'BC' ORDER BY ALL",
    "SELECT o.surname, s.length_days FROM offenders o LEFT JOIN sentences s "
    "ON o.fps_number = s.fps_number WHERE s.length_days IS NULL ORDER BY ALL",
    "SELECT o.fps_number, s.fps_number FROM offenders o RIGHT JOIN sentences s "
    "ON o.fps_number = s.fps_number WHERE o.surname IS NULL ORDER BY ALL",
    "SELECT o.fps_number, s.length_days FROM offenders o FULL JOIN sentences s "
    "ON o.fps_number = s.fps_number WHERE s.length_days < 200 OR o.status = 'UAL' ORDER BY ALL",
    "SELECT fps_number FROM offenders WHERE status = 'UAL' UNION "
    "SELECT fps_number FROM sentences WHERE length_days < 50 ORDER BY 1",
    "SELECT surname FROM offenders o WHERE EXISTS (SELECT 1 FROM sentences s "
    "WHERE s.fps_number = o.fps_number AND s.length_days > 500) ORDER BY 1",
    "SELECT surname, (SELECT max(length_days) FROM sentences s WHERE s.fps_number = o.fps_number) "
    "FROM offenders o ORDER BY ALL",
    "WITH offenders AS (SELECT fps_number FROM sentences WHERE length_days > 10) "
    "SELECT count(*) FROM offenders",
    "SELECT a.surname, b.surname FROM offenders a JOIN offenders b "
    "ON a.fps_number = b.fps_number AND a.source < b.source ORDER BY ALL",
    "SELECT surname FROM offenders WHERE surname LIKE '%o%' AND fps_number IN ('1A', '3C') "
    "ORDER BY 1",
    "SELECT count(*) FROM offenders WHERE status IS NULL OR status <> 'UAL'",
    "SELECT surname FROM offenders WHERE NOT (status = 'SUPERVISED') ORDER BY 1",
    "SELECT surname FROM offenders LIMIT 2 OFFSET 1",
    "SELECT surname, source FROM offenders WHERE source <> 'BC' ORDER BY ALL",
    "SELECT surname FROM offenders WHERE source NOT IN ('QC') AND NOT source = 'XX' ORDER BY 1",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_brokered_answer_equals_direct_answer(sql, small_federation):
    data = logical_tables(small_federation)
    rows, _ = brokered(sql, small_federation, data)
    expected = direct(sql, small_federation, data)
    if "LIMIT" in sql and "ORDER" not in sql:
        assert len(rows) == len(expected)
    else:
        assert rows == expected


def test_pushdown_happens(small_federation):
    sql = (
        "SELECT o.surname FROM offenders o JOIN sentences s ON o.fps_number = s.fps_number "
        "WHERE s.length_days > 50 AND o.status = 'UAL' AND o.source = 'BC'"
    )
    plan = plan_query(parse_query(sql, small_federation.tables), small_federation)
    o, s = sorted(plan.references, key=lambda r: r.alias)
    assert (o.alias, o.predicate, o.sources) == ("o", "(status = 'UAL')", ["BC"])
    assert o.columns == ["fps_number", "surname", "status"]
    assert (s.predicate, s.columns) == ("(length_days > 50)", ["fps_number", "length_days"])


def test_no_pushdown_into_the_null_supplying_side(small_federation):
    sql = (
        "SELECT * FROM offenders o LEFT JOIN sentences s ON o.fps_number = s.fps_number "
        "WHERE s.length_days IS NULL AND o.status = 'UAL'"
    )
    plan = plan_query(parse_query(sql, small_federation.tables), small_federation)
    refs = {r.alias: r for r in plan.references}
    assert refs["s"].predicates == []
    assert refs["o"].predicate == "(status = 'UAL')"


def test_limit_pushed_only_for_a_plain_filter(small_federation):
    def limit_of(sql: str) -> list[int]:
        plan = plan_query(parse_query(sql, small_federation.tables), small_federation)
        return [r.limit for r in plan.references]

    assert limit_of("SELECT surname FROM offenders WHERE status = 'UAL' LIMIT 3") == [3]
    assert limit_of("SELECT surname FROM offenders LIMIT 3 OFFSET 2") == [5]
    assert limit_of("SELECT surname FROM offenders ORDER BY surname LIMIT 3") == [0]
    assert limit_of("SELECT count(*) FROM offenders LIMIT 3") == [0]
    assert limit_of("SELECT DISTINCT surname FROM offenders LIMIT 3") == [0]
    assert limit_of("SELECT surname FROM offenders WHERE upper(surname) = 'X' LIMIT 3") == [0]


def test_unknown_column_is_named(small_federation):
    from accord.errors import InvalidQuery

    with pytest.raises(InvalidQuery, match="'addres'"):
        plan_query(
            parse_query("SELECT addres FROM offenders", small_federation.tables), small_federation
        )


@pytest.mark.parametrize(
    ("where", "sources"),
    [
        ("source = 'QC'", ["QC"]),
        ("source <> 'QC'", ["BC"]),
        ("NOT source = 'QC'", ["BC"]),
        ("source IN ('QC', 'XX')", ["QC"]),
        ("source NOT IN ('QC')", ["BC"]),
        ("source = 'XX'", []),
        ("source LIKE 'Q%'", ["BC", "QC"]),
        ("source = 'QC' OR surname = 'x'", ["BC", "QC"]),
    ],
)
def test_source_predicates_prune_sources(small_federation, where, sources):
    plan = plan_query(
        parse_query(f"SELECT surname FROM offenders WHERE {where}", small_federation.tables),
        small_federation,
    )
    assert plan.references[0].sources == sources


def test_each_source_is_asked_only_for_what_it_releases(small_federation):
    # QC does not release birth_date: it is not asked for it nor filtered on it,
    # and the limit is not pushed there since one conjunct stayed behind.
    sql = "SELECT surname, birth_date FROM offenders WHERE birth_date > DATE '1980-01-01' LIMIT 3"
    plan = plan_query(parse_query(sql, small_federation.tables), small_federation)
    specs = {s.source: s for s in plan.references[0].scans}
    assert specs["BC"].columns == ["surname", "birth_date"] and specs["BC"].limit == 3
    assert specs["QC"].columns == ["surname"]
    assert specs["QC"].predicate == "" and specs["QC"].limit == 0
