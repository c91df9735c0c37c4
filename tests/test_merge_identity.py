"""A secure view or merge that only selects and filters columns is computed
by Arrow (``broker.arrow_select``), without DuckDB: the answer, its schema,
the rows visible per source and every refusal are those DuckDB computes
(the same queries with the Arrow path turned off)."""

from __future__ import annotations

import asyncio
import time

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.errors import AccordError
from broker import arrow_select, merge
from broker.policy.masks import partner_key
from tests import inprocess, sqlfuzz
from tests.test_fuzz_prepare import CATALOGS

PARTNERS = ["police", "crown_attorney", "residential_facility", "victim", "contract_agency"]


def merged(sql: str, partner: str) -> tuple[object, ...]:
    try:
        prepared = inprocess.prepare(sql, partner)
        plan = prepared.plan
        try:
            tables = {ref.ref_id: inprocess._scanned(ref) for ref in plan.references}
        except duckdb.Error:  # the in-process scan of a predicate a source would refuse
            return ("not scanned",)
        table, visible = inprocess.MERGER.run(plan, tables, partner_key(inprocess.SECRET, partner))
    except AccordError as exc:
        return ("error", type(exc).__name__, str(exc))
    if prepared.plan.merge.args.get("limit") is not None:
        # Which rows a LIMIT keeps is not fixed (DuckDB's threads, ties of an
        # ORDER BY): how many, not which.
        return ("merged", table.schema, table.num_rows, visible)
    # Ties and unordered queries may come in another order: compared as a multiset
    rows = sorted(table.to_pylist(), key=repr)
    return ("merged", table.schema, rows, visible)


@pytest.mark.parametrize("partner", ["crown_attorney", "police"])
def test_a_point_lookup_is_merged_by_arrow(partner):
    prepared = inprocess.prepare(
        "SELECT surname, status FROM offenders WHERE fps_number = '1051244T'", partner
    )
    plan = prepared.plan
    tables = {ref.ref_id: inprocess._scanned(ref) for ref in plan.references}
    views = {}
    for name, view in plan.views:
        views[name] = arrow_select.evaluate(view, tables)
        assert views[name] is not None, view.sql()
    assert arrow_select.evaluate(plan.merge, {**tables, **views}) is not None


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.sampled_from(PARTNERS).flatmap(
        lambda p: st.tuples(st.just(p), sqlfuzz.plain_sql(CATALOGS[p]))
    )
)
def test_arrow_merges_are_what_duckdb_computes(partner_sql):
    partner, sql = partner_sql
    by_arrow = merged(sql, partner)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(merge, "evaluate", lambda query, tables: None)
        assert by_arrow == merged(sql, partner), sql


def test_a_few_rows_arrow_merges_whole_are_merged_without_a_merge_thread(monkeypatch):
    prepared = inprocess.prepare(
        "SELECT surname, status FROM offenders WHERE status <> 'X'", "crown_attorney"
    )
    plan = prepared.plan
    tables = {ref.ref_id: inprocess._scanned(ref) for ref in plan.references}
    assert 0 < sum(t.num_rows for t in tables.values()) <= merge.INLINE_ROWS
    expected = inprocess.MERGER.run(plan, tables)
    merger = merge.Merger(inprocess.FEDERATION)

    def no_thread(*args: object) -> None:
        raise AssertionError("merged on a merge thread")

    monkeypatch.setattr(merger, "_run_on", no_thread)
    deadline = time.monotonic() + 10
    try:
        assert asyncio.run(merger.merge(plan, tables, b"", deadline)) == expected
        big = {name: pa.concat_tables([t] * (merge.INLINE_ROWS + 1)) for name, t in tables.items()}
        with pytest.raises(AssertionError, match="merge thread"):
            asyncio.run(merger.merge(plan, big, b"", deadline))
    finally:
        merger.close()
