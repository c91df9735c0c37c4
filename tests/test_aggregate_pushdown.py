"""Aggregate pushdown never changes an answer, and it happens.

Proof by difference on SQLite: each query is answered twice through the
real adapter scan (``adapters.server.scan``), the broker's receiving checks
(``broker.fanout._receive``) and its merge: once with partial aggregates
asked of the sources (``broker.pushdown.aggregates``), once with rows only.
Three sources: one under the logical names, one renaming every column, one
with a code table and day-first text dates (which declines whatever reads
them, so every mix of pushed and declined sources comes up). The answers
must agree: integers and decimals exactly, floats within a tolerance.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import sqlite3
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from accord import ipc
from accord.errors import SourceUnavailable
from accord.federation import Federation, parse_federation
from accord.v1 import adapter_pb2
from adapters.backends.sqlite import SqliteBackend
from adapters.server import scan
from broker.fanout import ScanResult, _partial_schema, _receive
from broker.merge import Merger
from broker.planner import plan_query
from broker.validate import parse_query

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from adapters.backends.base import Backend

COLUMNS = {"k": "VARCHAR", "g": "BIGINT", "x": "DOUBLE", "n": "BIGINT", "d": "DATE", "c": "VARCHAR"}
RENAMED = {c: f"COL_{c.upper()}" for c in COLUMNS}
CODES = {"1": "X", "2": "Y"}
#: A source's tables with a code table and day-first text dates (it declines
#: whatever reads them), and one renaming every column.
CODED_TABLES = {
    "facts": {
        "columns": {
            "c": {"column": "c", "codes": CODES},
            "d": {"column": "d", "date_format": "%d.%m.%Y"},
        }
    }
}
RENAMED_TABLES = {"facts": {"physical_table": "FACT", "columns": RENAMED}}


def federation() -> Federation:
    return parse_federation(
        {
            "logical_model": {"facts": {"columns": COLUMNS}},
            "sources": [
                {
                    "code": "PLAIN",
                    "backend": {"kind": "sqlite", "path": "plain.sqlite"},
                    "tables": {"facts": {}},
                    "release": {"facts": "all"},
                },
                {
                    "code": "RENAMED",
                    "backend": {"kind": "sqlite", "path": "renamed.sqlite"},
                    "tables": RENAMED_TABLES,
                    "release": {"facts": "all"},
                },
                {
                    "code": "CODED",
                    "backend": {"kind": "sqlite", "path": "coded.sqlite"},
                    "tables": CODED_TABLES,
                    "release": {"facts": "all"},
                },
            ],
        }
    )


FEDERATION = federation()
MERGER = Merger(FEDERATION)
_REVERSE = {v: k for k, v in CODES.items()}


def load(root: Path, data: dict[str, list[tuple[Any, ...]]]) -> dict[str, SqliteBackend]:
    """Each source's rows in its own SQLite file, stored its own way."""
    backends = {}
    for code, rows in data.items():
        path = root / f"{code}.sqlite"
        path.unlink(missing_ok=True)
        names = RENAMED if code == "RENAMED" else {c: c for c in COLUMNS}
        table = "FACT" if code == "RENAMED" else "facts"
        con = sqlite3.connect(path)
        kinds = {"VARCHAR": "TEXT", "BIGINT": "INTEGER", "DOUBLE": "REAL", "DATE": "TEXT"}
        con.execute(
            f'CREATE TABLE "{table}" ('
            + ", ".join(f'"{names[c]}" {kinds[t]}' for c, t in COLUMNS.items())
            + ")"
        )
        stored = [_stored(code, row) for row in rows]
        con.executemany(f'INSERT INTO "{table}" VALUES ({", ".join("?" * len(COLUMNS))})', stored)
        con.commit()
        con.close()
        backends[code] = SqliteBackend(code, path)
    return backends


def _stored(code: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    k, g, x, n, d, c = row
    if code == "CODED":
        return (k, g, x, n, d.strftime("%d.%m.%Y") if d else None, _REVERSE.get(c, c))
    return (k, g, x, n, d.isoformat() if d else None, c)


def answer(
    sql: str,
    backends: Mapping[str, Backend],
    *,
    aggregates: bool,
    down: frozenset[str] = frozenset(),
    federation: Federation = FEDERATION,
) -> tuple[pa.Table, list[ScanResult]]:
    """The broker's answer over the adapters' real scans (``down``: sources
    that failed, with allow_partial)."""
    plan = plan_query(parse_query(sql, federation.tables), federation, aggregates=aggregates)
    results = []
    for ref in plan.references:
        logical = federation.tables[ref.table]
        for spec in ref.scans:
            request = adapter_pb2.ScanRequest(
                table=ref.table,
                columns=spec.columns,
                predicate=spec.predicate,
                limit=spec.limit,
                aggregate=spec.aggregate.message() if spec.aggregate is not None else None,
            )
            result = ScanResult(
                spec.source,
                ref,
                spec,
                known=frozenset(logical.columns),
                partial=_partial_schema(logical, request),
            )
            if spec.source in down:
                result.error = SourceUnavailable(spec.source, "down")
            else:
                source = federation.source(spec.source)
                expected = logical.arrow_schema(spec.columns)
                for message in scan(federation, source, backends[spec.source], request, "t"):
                    _receive(result, message, expected)
            results.append(result)
    merger = MERGER if federation is FEDERATION else Merger(federation)
    table, _ = merger.run(plan, merger.arrow_tables(plan, results))
    return table, results


def same(left: pa.Table, right: pa.Table) -> None:
    assert left.schema == right.schema
    assert left.num_rows == right.num_rows
    for a, b in zip(_sorted(left), _sorted(right), strict=True):
        for u, v in zip(a, b, strict=True):
            if isinstance(u, float) and isinstance(v, float):
                assert math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-6), (a, b)
            else:
                assert type(u) is type(v) and u == v, (a, b)


def _sorted(table: pa.Table) -> list[tuple[Any, ...]]:
    rows = list(zip(*(c.to_pylist() for c in table.columns), strict=True))

    def key(row: tuple[Any, ...]) -> tuple[Any, ...]:
        # Floats rounded: two sums in another order may differ in the last bits.
        return tuple((v is None, round(v, 6) if isinstance(v, float) else str(v)) for v in row)

    return sorted(rows, key=key)


values = {
    "k": st.sampled_from(["a", "b", "B", "é"]),
    "g": st.integers(-3, 3),
    "x": st.floats(-1000, 1000, allow_nan=False).map(lambda v: round(v, 3)),
    "n": st.integers(-(10**12), 10**12),
    "d": st.dates(dt.date(1990, 1, 1), dt.date(1999, 12, 31)),
    "c": st.sampled_from(["X", "Y"]),
}
rows = st.lists(
    st.tuples(*(st.none() | values[c] for c in COLUMNS)),
    max_size=12,
)
AGGREGATES = [
    "count(*)",
    "count(x)",
    "count(c)",
    "sum(x)",
    "sum(n)",
    "avg(x)",
    "avg(n)",
    "min(g)",
    "max(k)",
    "min(d)",
    "max(x)",
    "sum(x * (1 - x))",
    "sum(x) / count(*)",
]
WHERE = [
    "x > 0",
    "g = 1",
    "k = 'b'",
    "d >= DATE '1995-01-01'",
    "c = 'X'",
    "n IS NULL",
    "g BETWEEN 0 AND 2",
    "k LIKE 'b%'",
]


@st.composite
def queries(draw: st.DrawFn) -> str:
    groups = draw(
        st.lists(st.sampled_from(["k", "g", "c", "d", "source"]), unique=True, max_size=2)
    )
    aggregates = draw(st.lists(st.sampled_from(AGGREGATES), min_size=1, max_size=4, unique=True))
    where = draw(st.lists(st.sampled_from(WHERE), max_size=2, unique=True))
    outputs = [*groups, *(f"{a} AS v{i}" for i, a in enumerate(aggregates))]
    sql = f"SELECT {', '.join(outputs)} FROM facts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if groups:
        sql += " GROUP BY " + ", ".join(groups)
        if draw(st.booleans()):
            sql += " HAVING count(*) > 1"
    return sql


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aggregates")


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sql=queries(),
    data=st.fixed_dictionaries({s: rows for s in ("PLAIN", "RENAMED", "CODED")}),
    down=st.sets(st.sampled_from(["PLAIN", "RENAMED", "CODED"]), max_size=1),
)
def test_pushed_and_kept_aggregates_agree(root, sql, data, down):
    backends = load(root, data)
    pushed, results = answer(sql, backends, aggregates=True, down=frozenset(down))
    kept, _ = answer(sql, backends, aggregates=False, down=frozenset(down))
    same(pushed, kept)
    asked = [r for r in results if r.spec.aggregate is not None and r.error is None]
    event(f"{sum(r.aggregated for r in asked)} of {len(asked)} sources asked aggregated")


def test_a_source_that_can_aggregates_and_one_that_cannot_sends_rows(root):
    data: dict[str, list[tuple[Any, ...]]] = {
        "PLAIN": [("a", 1, 1.5, 10, dt.date(1995, 1, 1), "X")],
        "RENAMED": [("a", 1, 2.5, 20, None, "Y"), ("b", 2, None, None, None, None)],
        "CODED": [("a", 1, 4.0, 30, dt.date(1996, 1, 1), "X")],
    }
    backends = load(root, data)
    sql = "SELECT k, count(*) AS n, sum(x) AS s, sum(n) AS t FROM facts GROUP BY k"
    table, results = answer(sql, backends, aggregates=True)
    by_source = {r.source: r for r in results}
    assert by_source["PLAIN"].aggregated and by_source["RENAMED"].aggregated
    physical = _header(by_source["RENAMED"]).physical_sql
    # Each column read as the rows are (SQLite keeps any value anywhere).
    assert physical.startswith(
        "SELECT CASE TYPEOF(\"COL_K\") WHEN 'text' THEN \"COL_K\" WHEN 'integer' THEN "
        'CAST("COL_K" AS TEXT) WHEN \'real\' THEN CAST("COL_K" AS TEXT) END, COUNT(*), '
    )
    assert physical.endswith(
        'SUM(CASE TYPEOF("COL_N") WHEN \'integer\' THEN "COL_N" END) FROM "FACT" GROUP BY 1'
    )
    # Codes and text dates are not read here: CODED aggregates too.
    assert by_source["CODED"].aggregated
    assert sorted(zip(*(c.to_pylist() for c in table.columns), strict=True)) == [
        ("a", 3, 8.0, decimal.Decimal(60)),
        ("b", 1, None, None),
    ]
    # Grouped on, a code decodes as the rows' would; counted, it is declined.
    _, results = answer("SELECT c, count(*) AS n FROM facts GROUP BY c", backends, aggregates=True)
    assert all(r.aggregated for r in results)
    _, results = answer("SELECT count(c) AS n FROM facts", backends, aggregates=True)
    coded = next(r for r in results if r.source == "CODED")
    assert not coded.aggregated and "codes" in _header(coded).aggregate_declined
    assert coded.rows == 1  # its rows, for the broker to aggregate


def test_empty_inputs_count_zero_and_sum_null(root):
    backends = load(root, {"PLAIN": [], "RENAMED": [], "CODED": []})
    sql = "SELECT count(*) AS n, count(x) AS m, sum(x) AS s, avg(n) AS a, min(k) AS k FROM facts"
    for aggregates in (True, False):
        table, _ = answer(sql, backends, aggregates=aggregates)
        assert table.to_pylist() == [{"n": 0, "m": 0, "s": None, "a": None, "k": None}]
    table, _ = answer(sql, backends, aggregates=True, down=frozenset(FEDERATION.sources))
    assert table.to_pylist() == [{"n": 0, "m": 0, "s": None, "a": None, "k": None}]


def test_what_is_not_pushed(root):
    for sql in (
        "SELECT count(DISTINCT k) FROM facts",
        "SELECT upper(k), count(*) FROM facts GROUP BY upper(k)",
        "SELECT sum(x / 2) FROM facts",
        "SELECT sum(g * g) FROM facts",  # integer arithmetic: overflow differs
        "SELECT k FROM facts",
        "SELECT count(*) FROM facts WHERE k = 'a' OR x + 1 > 2",  # not pushed whole
        "SELECT count(*) FROM facts f JOIN facts h ON f.k = h.k",
        "SELECT k, count(*) OVER () FROM facts",
    ):
        plan = plan_query(parse_query(sql, FEDERATION.tables), FEDERATION)
        assert plan.aggregate is None, sql
    assert (
        plan_query(
            parse_query("SELECT count(*) FROM facts", FEDERATION.tables),
            FEDERATION,
            aggregates=False,
        ).aggregate
        is None
    )


def test_a_source_cannot_send_an_aggregate_it_was_not_asked_for():
    sql = "SELECT k FROM facts"
    plan = plan_query(parse_query(sql, FEDERATION.tables), FEDERATION)
    ref = plan.references[0]
    spec = ref.scans[0]
    result = ScanResult(spec.source, ref, spec, known=frozenset(COLUMNS))
    schema = ipc.schema_to_bytes(pa.schema([("rows", pa.int64())]))
    header = adapter_pb2.ScanHeader(aggregated=True, arrow_schema=schema)
    with pytest.raises(SourceUnavailable, match="not asked for"):
        _receive(
            result,
            adapter_pb2.ScanResponse(header=header),
            FEDERATION.tables["facts"].arrow_schema(spec.columns),
        )


def _header(result: ScanResult) -> adapter_pb2.ScanHeader:
    assert result.header is not None
    return result.header


@pytest.mark.parametrize("text", ["31.02.1995", "1.2.1995", "garbage", "01.02.1995"])
def test_text_dates_are_checked_before_a_superset_is_aggregated(root, text):
    backends = load(root, {"PLAIN": [], "RENAMED": [], "CODED": []})
    con = sqlite3.connect(root / "CODED.sqlite")
    con.execute("INSERT INTO facts (k, d) VALUES ('a', ?)", (text,))
    con.commit()
    con.close()
    sql = "SELECT count(*) AS n, min(k) AS k FROM facts WHERE d >= DATE '1990-01-01'"
    pushed, results = answer(sql, backends, aggregates=True)
    kept, _ = answer(sql, backends, aggregates=False)
    same(pushed, kept)
    coded = next(r for r in results if r.source == "CODED")
    canonical = text == "01.02.1995"  # a date as the format prints it: the range is exact
    assert coded.aggregated == canonical
    if not canonical:
        assert "not as their format prints them" in _header(coded).aggregate_declined


def test_a_remembered_date_check_is_run_again_once_the_data_changed(root):
    backends = load(root, {"PLAIN": [], "RENAMED": [], "CODED": []})
    sql = "SELECT count(*) AS n FROM facts WHERE d >= DATE '1990-01-01'"
    for _ in range(2):  # the second time from what the first remembered
        _, results = answer(sql, backends, aggregates=True)
        assert all(r.aggregated for r in results)
    assert backends["CODED"].checked
    con = sqlite3.connect(root / "CODED.sqlite")
    con.execute("INSERT INTO facts (k, d) VALUES ('a', '31.02.1995')")
    con.commit()
    con.close()
    pushed, results = answer(sql, backends, aggregates=True)
    assert not next(r for r in results if r.source == "CODED").aggregated
    same(pushed, answer(sql, backends, aggregates=False)[0])


def test_a_source_cannot_send_an_impossible_partial(root):
    backends = load(root, {"PLAIN": [], "RENAMED": [], "CODED": []})
    sql = "SELECT count(x) AS n FROM facts"
    _, results = answer(sql, backends, aggregates=True)
    assert all(r.aggregated and r.rows == 0 for r in results)  # nothing matched: nothing sent
    result = results[0]
    assert result.partial is not None
    result.trailer = False  # as if still streaming
    for rows, counted in ((-1, 0), (1, 2), (None, 0)):
        forged = pa.record_batch(
            [pa.array([rows], pa.int64()), pa.array([counted], pa.int64())], schema=result.partial
        )
        message = adapter_pb2.ScanResponse(arrow_batch=ipc.batch_to_bytes(forged))
        with pytest.raises(SourceUnavailable, match="partial aggregate"):
            _receive(result, message, result.partial)
