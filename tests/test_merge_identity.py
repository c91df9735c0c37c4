"""A secure view that only selects columns (no mask, no row filter) is
registered as the Arrow projection of its table, without DuckDB
(``broker.pushdown.identity.identity_projection``): the answer, its schema and the rows
visible per source are those of the view computed by DuckDB."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.errors import AccordError
from broker import merge
from broker.policy.masks import partner_key
from broker.pushdown.identity import identity_projection
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
    # Ties and unordered queries may come in another order: compared as a multiset
    rows = sorted(table.to_pylist(), key=repr)
    return ("merged", table.schema, rows, visible)


def test_a_crown_point_lookup_uses_the_projection():
    prepared = inprocess.prepare(
        "SELECT surname, status FROM offenders WHERE fps_number = '1051244T'", "crown_attorney"
    )
    assert [identity_projection(view) for _, view in prepared.plan.views] == [
        ("ref1", ["fps_number", "surname", "status", "source"])
    ]


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
def test_the_projection_is_what_duckdb_computes(partner_sql):
    partner, sql = partner_sql
    projected = merged(sql, partner)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(merge, "identity_projection", lambda view: None)
        assert projected == merged(sql, partner), sql
