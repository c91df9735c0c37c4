"""The federation file's defaults and checks: an unlisted column (or table
name) is stored under its logical name, ``null`` says a column is not held,
and a source without a release agreement is refused rather than serving
nothing."""

from __future__ import annotations

from typing import Any

import pytest

from accord.errors import ConfigError
from accord.federation import parse_federation

MODEL = {"nation": {"columns": {"n_nationkey": "BIGINT", "n_name": "VARCHAR", "n_note": "VARCHAR"}}}


def federation(tables: dict[str, Any], **source: Any) -> dict[str, Any]:
    spec = {"code": "S1", "backend": {"kind": "sqlite", "path": "s1.sqlite"}, "tables": tables}
    return {"logical_model": MODEL, "sources": [{"release": {"nation": "all"}, **spec, **source}]}


def test_unlisted_columns_and_tables_keep_their_logical_names():
    parsed = parse_federation(federation({"nation": {"columns": {"n_name": "NAME_TX"}}}))
    mapping = parsed.sources["S1"].tables["nation"]
    assert mapping.physical_table == "nation"
    assert {c: m.physical for c, m in mapping.columns.items()} == {
        "n_nationkey": "n_nationkey",
        "n_name": "NAME_TX",
        "n_note": "n_note",
    }


@pytest.mark.parametrize("spec", [None, {}, {"columns": {}}, {"columns": None}])
def test_a_table_of_the_logical_schema_needs_no_mapping(spec):
    mapping = parse_federation(federation({"nation": spec})).sources["S1"].tables["nation"]
    assert mapping.physical_table == "nation"
    assert [m.physical for m in mapping.columns.values()] == ["n_nationkey", "n_name", "n_note"]


def test_null_says_a_column_is_not_held():
    parsed = parse_federation(federation({"nation": {"columns": {"n_note": None}}}))
    assert list(parsed.sources["S1"].tables["nation"].columns) == ["n_nationkey", "n_name"]


def test_a_listed_column_must_be_logical():
    with pytest.raises(ConfigError, match="column 'n_nme' is not in logical table nation"):
        parse_federation(federation({"nation": {"columns": {"n_nme": "NAME"}}}))


def test_a_source_without_release_is_refused():
    raw = federation({"nation": {}})
    del raw["sources"][0]["release"]
    with pytest.raises(ConfigError, match="source S1: no release agreement"):
        parse_federation(raw)


def test_an_empty_release_shares_nothing_on_purpose():
    parsed = parse_federation(federation({"nation": {}}, release={}))
    assert parsed.sources_serving("nation") == []
