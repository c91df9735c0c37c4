"""adapters.scan_plans: a scan planned from its shape's template is exactly
the scan planned afresh, for every source's mapping and dialect, whatever
the values; only plain text values compared with uncoded text columns are
parameters, and a text that could hide a quote has no shape."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import AccordError
from accord.federation import load_federation
from accord.v1 import adapter_pb2
from adapters.scan_plans import RowScan, ScanPlans, split_literals
from adapters.server import row_scan
from tests.conftest import ROOT

FEDERATION = load_federation(ROOT / "deploy" / "federation.yaml")
#: Each source's SQL dialect as its adapter runs it (PostgreSQL and MariaDB
#: rules come from the integration suite's backends; SQLite is the default).
DIALECTS = ("sqlite", "postgres", "mysql")

#: Predicate shapes, ``{}`` for each literal's contents.
SHAPES = {
    "offenders": [
        "fps_number = '{}'",
        "fps_number IN ('{}', '{}')",
        "surname = '{}' AND given_names <> '{}'",
        "status = '{}' OR fps_number = '{}'",  # status is coded: its value is a key
        "birth_date IN (DATE '{}', DATE '{}')",  # dates are keys
        "surname LIKE '{}' AND fps_number = '{}'",  # a pattern is a key
        "NOT (fps_number = '{}') AND security_level IS NULL",
        "fps_number = '{}' AND birth_date >= DATE '1980-01-01'",
    ],
    "sentences": ["fps_number = '{}'", "source_person_id = '{}' AND offence_code = '{}'"],
    "aliases": ["fps_number = '{}' OR alias_surname = '{}'"],
}

PLAIN = st.from_regex(r"[A-Za-z0-9_.:@/-]{1,12}", fullmatch=True)
#: Anything a value may be: plain, accented, spaced, quoted (as SQL doubles it), dates.
VALUES = st.one_of(
    PLAIN,
    st.sampled_from(["IN_CUSTODY", "UAL", "1980-02-01", "2001-13-45", "Seán", "A B", "x%"]),
    st.text(max_size=8).map(lambda t: t.replace("'", "''")),
)


def request(table: str, predicate: str, columns: list[str] | None = None) -> Any:
    return adapter_pb2.ScanRequest(
        table=table, columns=columns or list(FEDERATION.tables[table].columns), predicate=predicate
    )


def builder(source: str, dialect: str, req: Any) -> Any:
    def build(predicate: str) -> RowScan:
        return row_scan(FEDERATION, FEDERATION.sources[source], dialect, req, predicate)

    return build


def plans_for(source: str) -> ScanPlans:
    src = FEDERATION.sources[source]
    return ScanPlans(lambda name: (FEDERATION.tables[name], src.tables[name]))


def released(source: str, table: str) -> list[str]:
    release = FEDERATION.sources[source].release[table]
    return [c for c in FEDERATION.tables[table].columns if c in release.columns]


def fresh(source: str, dialect: str, req: Any) -> RowScan | type[AccordError]:
    try:
        plan: RowScan = builder(source, dialect, req)(req.predicate)
        return plan
    except AccordError as exc:
        return type(exc)


def cached(plans: ScanPlans, source: str, dialect: str, req: Any) -> RowScan | type[AccordError]:
    try:
        return plans.plan(req, builder(source, dialect, req))
    except AccordError as exc:
        return type(exc)


def same(a: Any, b: Any) -> bool:
    if not isinstance(a, RowScan) or not isinstance(b, RowScan):
        return bool(a == b)
    pa_, pb = a.physical, b.physical
    return (
        (pa_.sql, pa_.params, pa_.pushed, pa_.residual, pa_.superset)
        == (pb.sql, pb.params, pb.pushed, pb.residual, pb.superset)
        and [type(p) for p in pa_.params] == [type(p) for p in pb.params]
        and (pa_.limit_pushed, pa_.dialect, pa_.columns)
        == (pb.limit_pushed, pb.dialect, pb.columns)
        and (a.columns, a.fetched, a.guarded) == (b.columns, b.fetched, b.guarded)
        and a.schema.equals(b.schema)
        and a.fetched_schema.equals(b.fetched_schema)
        and a.stored == b.stored
    )


@settings(max_examples=150, deadline=None)
@given(
    source=st.sampled_from(sorted(FEDERATION.sources)),
    dialect=st.sampled_from(DIALECTS),
    table=st.sampled_from(sorted(SHAPES)),
    data=st.data(),
)
def test_a_planned_scan_is_exactly_the_scan_planned_afresh(source, dialect, table, data):
    if table not in FEDERATION.sources[source].tables:
        return
    shape = data.draw(st.sampled_from(SHAPES[table]))
    plans = plans_for(source)
    columns = released(source, table)
    # The same shape several times with other values: the second builds the
    # template, the rest may be planned from it.
    for _ in range(4):
        values = [data.draw(VALUES) for _ in range(shape.count("{}"))]
        req = request(table, shape.format(*values), columns)
        assert same(cached(plans, source, dialect, req), fresh(source, dialect, req))


def test_a_point_lookup_is_planned_from_its_template():
    plans = plans_for("BC")
    columns = released("BC", "sentences")
    for i in range(10):
        req = request("sentences", f"fps_number = '{100000 + i}A'", columns)
        planned = plans.plan(req, builder("BC", "sqlite", req))
        assert planned.physical.params[-1] == f"{100000 + i}A"
        assert same(planned, fresh("BC", "sqlite", req))
    assert plans.hits == 8 and plans.misses == 2  # the second sighting built it


@pytest.mark.parametrize(
    ("predicate", "values"),
    [
        ("status = 'UAL'", ["UAL", "IN_CUSTODY"]),  # coded: the stored code differs
        ("birth_date = DATE '{}'", ["1980-01-02", "1975-12-31"]),
    ],
)
def test_a_literal_that_is_not_a_parameter_keys_its_own_template(predicate, values):
    plans = plans_for("BC")
    columns = released("BC", "offenders")
    for value in values * 3:
        text = predicate.format(value) if "{}" in predicate else f"status = '{value}'"
        req = request("offenders", text, columns)
        assert same(plans.plan(req, builder("BC", "sqlite", req)), fresh("BC", "sqlite", req))
    # Each value's own template, built its second time and used its third.
    assert plans.hits == len(values)


def test_a_value_that_is_not_plain_is_planned_afresh():
    plans = plans_for("BC")
    columns = released("BC", "offenders")
    for value in ["A1", "A2", "O''Brien", "Seán", "a  b", "x" * 65]:
        req = request("offenders", f"surname = '{value}'", columns)
        assert same(plans.plan(req, builder("BC", "sqlite", req)), fresh("BC", "sqlite", req))
    assert plans.hits == 0  # A2 built the template; none of the rest may use it


@pytest.mark.parametrize(
    "predicate",
    [
        "surname = 'a\\' OR 1 = 1 --'",
        'surname = "x\'y"',
        "surname = 'a' -- ' OR fps_number = 'b'",
        "surname = 'a' /* ' */",
        "surname = $$a'b$$",
        "surname = 'a''b'",
        "surname = 'unclosed",
    ],
)
def test_a_text_that_could_hide_a_quote_has_no_shape(predicate):
    assert split_literals(predicate) is None


def test_the_split_keeps_the_text_around_the_literals():
    assert split_literals("a = 'x' AND b IN ('y', '')") == (
        ("a = ", " AND b IN (", ", ", ")"),
        ("x", "y", ""),
    )
    assert split_literals("") == (("",), ())
