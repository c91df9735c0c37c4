"""A whole federation on loopback: six adapter processes and the broker,
real gRPC over real mutual TLS, real SQLite files in each system's schema.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pytest

from accord.federation import Federation, load_federation
from adapters.datagen import generate, write_federation_data
from broker.client import BrokerClient
from broker.commands import init_certs
from broker.launcher import LocalFederation
from broker.workdir import DEFAULT_FEDERATION, DEFAULT_PARTNERS, Workdir

SEED = 11
SCALE = 0.005


@dataclass
class Running:
    workdir: Workdir
    federation: Federation
    launcher: LocalFederation
    oracle: duckdb.DuckDBPyConnection

    @property
    def address(self) -> str:
        return self.launcher.broker_address

    def client(self, partner: str = "crown_attorney", **kwargs) -> BrokerClient:
        ca, cert, key = self.workdir.partner_credentials(partner)
        return BrokerClient(self.address, ca, cert, key, **kwargs)


def oracle_connection(federation: Federation, seed: int, scale: float) -> duckdb.DuckDBPyConnection:
    """DuckDB over the union of every source's generated logical data.

    Independent of the adapters: the data comes straight from the generator,
    before it was written into any physical schema.
    """
    con = duckdb.connect()
    generated = generate(federation, seed=seed, scale=scale)
    for name, logical in federation.tables.items():
        parts = []
        for code, tables in generated.items():
            release = federation.sources[code].release.get(name)
            if name not in tables or release is None:
                continue  # the jurisdiction does not share this table
            con.register("raw", tables[name])
            select = ", ".join(c if c in release.columns else f"NULL::{t} AS {c}"
                               for c, t in logical.columns.items())
            where = f" WHERE {release.row_filter}" if release.row_filter else ""
            parts.append(con.sql(f"SELECT {select}, '{code}' AS source FROM raw{where}")
                         .to_arrow_table())
            con.unregister("raw")
        released = federation.released_columns(name)
        if parts:
            table = pa.concat_tables(parts)
            con.register(name, table.select([*released, "source"]))
    return con


@pytest.fixture(scope="session")
def running(tmp_path_factory) -> Running:
    workdir = Workdir(tmp_path_factory.mktemp("accord"))
    init_certs(workdir, DEFAULT_FEDERATION, DEFAULT_PARTNERS)
    federation = load_federation(DEFAULT_FEDERATION)
    write_federation_data(federation, workdir.path, seed=SEED, scale=SCALE)
    launcher = LocalFederation(workdir, DEFAULT_FEDERATION, DEFAULT_PARTNERS)
    with launcher:
        yield Running(workdir, federation, launcher, oracle_connection(federation, SEED, SCALE))


@pytest.fixture(scope="session")
def crown(running) -> BrokerClient:
    with running.client("crown_attorney", end_user="test-user") as client:
        yield client


def rows(table: pa.Table) -> list[tuple]:
    return list(zip(*(c.to_pylist() for c in table.columns), strict=True))

