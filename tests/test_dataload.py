"""The Parquet loader's split: every row on exactly one source, or refused."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import ConfigError
from accord.federation import parse_federation
from app.dataload import read_logical, split

FEDERATION = parse_federation(
    {
        "logical_model": {
            "orders": {"columns": {"o_orderkey": "BIGINT", "o_total": "DOUBLE"}},
            "region": {"columns": {"r_regionkey": "BIGINT"}},
        },
        "sources": [
            {
                "code": code,
                "backend": {"kind": "sqlite", "path": f"{code}.sqlite"},
                "release": {"orders": "all"},
                "tables": {"orders": {}, **({"region": {}} if code == "A" else {})},
            }
            for code in ("A", "B", "C")
        ],
    }
)


def orders(keys: list[int | None]) -> pa.Table:
    return pa.table(
        {"o_orderkey": pa.array(keys, pa.int64()), "o_total": [float(i) for i in range(len(keys))]}
    )


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    keys=st.lists(st.integers(-1000, 1000), max_size=50),
    cuts=st.tuples(st.integers(-1000, 1000), st.integers(-1000, 1000)).map(sorted),
)
def test_range_shards_partition_the_rows(keys, cuts):
    low, high = cuts
    shards = {
        "orders": {
            "A": f"o_orderkey < {low}",
            "B": f"o_orderkey >= {low} AND o_orderkey < {high}",
            "C": f"o_orderkey >= {high}",
        }
    }
    out = split(FEDERATION, {"orders": orders(keys)}, shards)
    parts = {code: out[code]["orders"].column("o_total").to_pylist() for code in "ABC"}
    assert sorted(v for part in parts.values() for v in part) == [
        float(i) for i in range(len(keys))
    ]
    assert all(k < low for k in out["A"]["orders"].column("o_orderkey").to_pylist())
    assert all(k >= high for k in out["C"]["orders"].column("o_orderkey").to_pylist())


@pytest.mark.parametrize(
    ("shards", "message"),
    [
        ({"A": "o_orderkey < 5", "B": "o_orderkey >= 3", "C": "false"}, "more than one"),
        ({"A": "o_orderkey < 5", "B": "false", "C": "false"}, "match no shard"),
        ({"A": "true", "B": "false"}, "must give a predicate for each"),
        ({"A": "nonsense > 1", "B": "true", "C": "false"}, "a shard predicate fails"),
    ],
)
def test_shards_that_lose_or_double_rows_are_refused(shards, message):
    with pytest.raises(ConfigError, match=message):
        split(FEDERATION, {"orders": orders([1, 4, 9, None])}, {"orders": shards})


def test_a_table_on_one_source_goes_there_whole():
    region = pa.table({"r_regionkey": pa.array([0, 1], pa.int64())})
    assert split(FEDERATION, {"region": region}, {})["A"]["region"] is region


def test_files_are_cast_to_the_logical_types(tmp_path: Path):
    pq.write_table(
        pa.table(
            {
                "o_total": pa.array([1], pa.decimal128(15, 2)),
                "o_orderkey": pa.array([7], pa.int32()),
                "extra": ["x"],
            }
        ),
        tmp_path / "orders.parquet",
    )
    table = read_logical(tmp_path, FEDERATION.tables["orders"])
    assert table.schema == FEDERATION.tables["orders"].arrow_schema()
    assert table.to_pylist() == [{"o_orderkey": 7, "o_total": 1.0}]
    with pytest.raises(ConfigError, match=r"no .*region\.parquet for logical table region"):
        read_logical(tmp_path, FEDERATION.tables["region"])
    pq.write_table(pa.table({"r_key": [1]}), tmp_path / "region.parquet")
    with pytest.raises(ConfigError, match=r"lacks the logical columns \['r_regionkey'\]"):
        read_logical(tmp_path, FEDERATION.tables["region"])
