"""The bench's peer (DuckDB's scanners, bench/peer.py) reads each source as
the federation maps it, and W5's shards keep a third of the orders each at
any scale (bench/tpch.py)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import duckdb
import pytest
import yaml

from accord.federation import load_federation
from bench import peer_worker
from bench.peer import PEER_SETTINGS, _libpq, spec
from bench.tpch import FEDERATION, SHARDS, SHARDS_SCALE, scaled_shards

if TYPE_CHECKING:
    from pathlib import Path


def test_a_stored_column_reads_as_its_logical_value() -> None:
    """Codes decoded, text dates parsed, a cast only where the types differ."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE stored AS SELECT 10 AS status_code, '31.12.1998' AS ship, "
        "CAST(7 AS INTEGER) AS qty, 'x' AS name"
    )
    columns: list[dict[str, Any]] = [
        {"logical": "status", "physical": "status_code", "type": "VARCHAR", "codes": {"10": "F"}},
        {"logical": "shipped", "physical": "ship", "type": "DATE", "date_format": "%d.%m.%Y"},
        {"logical": "quantity", "physical": "qty", "type": "BIGINT"},
        {"logical": "name", "physical": "name", "type": "VARCHAR"},
    ]
    stored = {row[0]: str(row[1]) for row in con.execute("DESCRIBE stored").fetchall()}
    select = ", ".join(peer_worker.column_sql(c, stored[c["physical"]]) for c in columns)
    assert '"name" AS "name"' in select  # no cast: filters push down on the stored column
    row = con.execute(f"SELECT {select} FROM stored").fetchone()
    assert row == ("F", dt.date(1998, 12, 31), 7, "x")
    types = [str(t[1]) for t in con.execute(f"DESCRIBE SELECT {select} FROM stored").fetchall()]
    assert types == ["VARCHAR", "DATE", "BIGINT", "VARCHAR"]


def test_the_peer_attaches_every_source_and_maps_every_table(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ACCORD_TPCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/t1")
    monkeypatch.setenv("ACCORD_TPCH_MARIADB_DSN", "mysql://root@127.0.0.1:3306/t1")
    federation = load_federation(FEDERATION)
    setup = spec(federation, tmp_path)
    attach = {a["alias"]: (a["type"], a["dsn"]) for a in setup["attach"]}
    assert attach == {
        "ORDERDESK": ("postgres", "host=127.0.0.1 port=5432 user=postgres dbname=t1"),
        "WAREHOUSE": ("mysql", "host=127.0.0.1 port=3306 user=root database=t1"),
        "ARCHIVE": ("sqlite", str(tmp_path / "data" / "tpch-archive.sqlite")),
    }
    assert set(setup["views"]) == set(federation.tables)
    for name, parts in setup["views"].items():
        holders = {c for c, s in federation.sources.items() if name in s.tables}
        assert {p["alias"] for p in parts} == holders
        for part in parts:
            assert [c["logical"] for c in part["columns"]] == list(federation.tables[name].columns)
    assert setup["settings"] == PEER_SETTINGS


def test_a_password_reaches_the_scanner() -> None:
    assert _libpq("mysql://u:p@h:1/d") == "host=h port=1 user=u password=p database=d"


@pytest.mark.parametrize("scale", [SHARDS_SCALE, 0.05, 1.0])
def test_the_shards_scale_with_the_order_keys(tmp_path: Path, scale: float) -> None:
    shards = yaml.safe_load(scaled_shards(tmp_path / "shards.yaml", scale).read_text())
    bound = round(20000 * scale / SHARDS_SCALE)
    assert shards["orders"]["ORDERDESK"] == f"o_orderkey < {bound}"
    assert shards["lineitem"]["ARCHIVE"] == f"l_orderkey >= {2 * bound}"
    if scale == SHARDS_SCALE:
        assert shards == yaml.safe_load(SHARDS.read_text())
