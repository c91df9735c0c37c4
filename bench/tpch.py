"""TPC-H as a federation: the data, its three sources and the 22 queries.

Shared by the TPC-H answers test (tests/integration/test_tpch.py) and the
bench's W5: ``tpchgen-cli`` writes the eight tables as Parquet; the loader
(``app/dataload.py``) spreads them over a PostgreSQL, a MariaDB and a SQLite
source (tests/fixtures/tpch/federation.yaml), lineitem and orders sharded by
order key; a DuckDB over the same Parquet data is the reference (the
*single engine*).

The PostgreSQL and MariaDB databases are new and uniquely named for each
:func:`tpch_federation`, and dropped when it ends; the adapters find them
through the federation's ``env:`` DSNs, set for the block's duration.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import yaml

from accord.federation import Federation, load_federation
from accord.workdir import ROOT, Workdir
from app.commands import init_certs
from app.dataload import load_federation_files, read_logical

if TYPE_CHECKING:
    from collections.abc import Iterator

FIXTURES = ROOT / "tests" / "fixtures" / "tpch"
FEDERATION = FIXTURES / "federation.yaml"
POLICIES = FIXTURES / "policies"
SHARDS = FIXTURES / "shards.yaml"
QUERIES = FIXTURES / "queries.sql"
#: The role that sees everything, and its purpose (the fixture's policies).
PARTNER, PURPOSE = "tpch_benchmark", "benchmark"
#: The scale the fixture's shard bounds are written for (a third of the
#: order keys each: TPC-H's order keys run to 6,000,000 x scale).
SHARDS_SCALE = 0.01
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
MARIADB_SERVER = "mysql://root@127.0.0.1:3306"
DSN_VARIABLES = {"ACCORD_TPCH_PG_DSN": PG_SERVER, "ACCORD_TPCH_MARIADB_DSN": MARIADB_SERVER}


def load_queries(path: Path = QUERIES) -> dict[int, str]:
    """Query number -> SQL, from the lines ``-- Qn`` that start each query."""
    parts = re.split(r"^-- Q(\d+)\s*$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {int(n): sql.strip() for n, sql in zip(parts[1::2], parts[2::2], strict=True)}


def tpchgen(directory: Path, scale: float) -> Path:
    """TPC-H tables as Parquet files in ``directory`` (one per table)."""
    binary = Path(sys.executable).parent / "tpchgen-cli"
    subprocess.run(
        [str(binary), "parquet", "-s", str(scale), "--output-dir", str(directory)],
        check=True,
        capture_output=True,
    )
    return directory


def scaled_shards(target: Path, scale: float) -> Path:
    """The fixture's shards file with its order-key bounds scaled to ``scale``,
    so each source keeps a third of the orders at any scale."""
    factor = scale / SHARDS_SCALE
    shards = yaml.safe_load(SHARDS.read_text(encoding="utf-8"))
    scaled = {
        table: {
            code: re.sub(r"\b\d+\b", lambda m: str(round(int(m.group()) * factor)), predicate)
            for code, predicate in by_source.items()
        }
        for table, by_source in shards.items()
    }
    target.write_text(yaml.safe_dump(scaled, sort_keys=False), encoding="utf-8")
    return target


def reference_engine(federation: Federation, data: Path) -> duckdb.DuckDBPyConnection:
    """One DuckDB holding every logical table, read from the Parquet data."""
    reference = duckdb.connect()
    for table in federation.tables.values():
        logical = read_logical(data, table)
        reference.register(f"_{table.name}", logical)
        reference.execute(f"CREATE TABLE {table.name} AS SELECT * FROM _{table.name}")
        reference.unregister(f"_{table.name}")
    return reference


def drop_databases(name: str) -> None:
    """Drops the PostgreSQL and MariaDB databases called ``name``, if present."""
    import mysql.connector
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    maria = mysql.connector.connect(host="127.0.0.1", user="root", password="")
    try:
        maria.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        maria.close()


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the block (the federation's child
    processes inherit them), then each variable as it was, or unset."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def server_databases(prefix: str = "accord_tpch") -> Iterator[str]:
    """Points the federation's DSN variables at new database names (the
    loader creates them) for the block, then drops them; yields the name."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        with environment({k: f"{server}/{name}" for k, server in DSN_VARIABLES.items()}):
            yield name
    finally:
        drop_databases(name)


@dataclass
class TpchData:
    """A loaded TPC-H federation: its work dir (certificates, SQLite file),
    the Parquet data and the loaded row counts (source -> table -> rows)."""

    federation: Federation
    workdir: Workdir
    data: Path
    scale: float
    loaded: dict[str, dict[str, int]]

    def reference(self) -> duckdb.DuckDBPyConnection:
        return reference_engine(self.federation, self.data)


@contextlib.contextmanager
def tpch_federation(root: Path, scale: float, policies: Path = POLICIES) -> Iterator[TpchData]:
    """Generates TPC-H at ``scale`` under ``root`` and loads it into the three
    sources (new server databases, dropped afterwards)."""
    with server_databases():
        data = tpchgen(_mkdir(root / "tpch-data"), scale)
        workdir = Workdir(_mkdir(root / "tpch-work"))
        init_certs(workdir, FEDERATION, policies)
        federation = load_federation(FEDERATION)
        shards = scaled_shards(root / "tpch-shards.yaml", scale)
        loaded = load_federation_files(federation, data, workdir.path, shards)
        yield TpchData(federation, workdir, data, scale, loaded)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
