"""A source whose database is down, and stored values that do not fit the
logical model: each is a clear, per-source error, never a crash or a silent loss."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import grpc
import pytest

from accord.errors import ConversionError, SourceUnavailable, grpc_status
from accord.federation import load_federation
from accord.v1 import adapter_pb2
from accord.workdir import DEFAULT_FEDERATION
from adapters.backends.mysql import MysqlBackend
from adapters.backends.postgres import PostgresBackend
from adapters.backends.sqlite import SqliteBackend
from adapters.server import scan

if TYPE_CHECKING:
    from adapters.backends.base import Backend

pytestmark = pytest.mark.integration

FEDERATION = load_federation(DEFAULT_FEDERATION)
REQUEST = adapter_pb2.ScanRequest(table="offenders", columns=["surname"], query_id="fault")


def run(
    backend: Backend, source: str = "CA-CSC", request: adapter_pb2.ScanRequest = REQUEST
) -> list[adapter_pb2.ScanResponse]:
    return list(scan(FEDERATION, FEDERATION.sources[source], backend, request, "t", 5))


@pytest.mark.parametrize(
    "make",
    [
        lambda: PostgresBackend("CA-CSC", "postgresql://postgres@127.0.0.1:1/nothing"),
        lambda: MysqlBackend("CA-CSC", "mysql://root@127.0.0.1:1/nothing"),
    ],
)
def test_a_database_that_is_down_is_unavailable_naming_the_source(make):
    backend = make()
    try:
        with pytest.raises(SourceUnavailable, match=r"source CA-CSC: .*unreachable") as caught:
            run(backend)
        # what a servicer answers for it: UNAVAILABLE, naming the source
        code, message = grpc_status(caught.value)
        assert code == grpc.StatusCode.UNAVAILABLE and "source CA-CSC" in message
    finally:
        backend.close()


def test_a_missing_sqlite_file_is_unavailable_naming_the_source(tmp_path):
    with pytest.raises(SourceUnavailable, match="source CA-CSC"):
        run(SqliteBackend("CA-CSC", tmp_path / "gone.sqlite"))


def test_a_stored_value_that_does_not_fit_names_table_and_column(tmp_path):
    mapping = FEDERATION.sources["CA-CSC"].tables["offenders"]
    path = tmp_path / "oms.sqlite"
    with sqlite3.connect(path) as conn:
        dob = mapping.columns["birth_date"].physical
        conn.execute(f'CREATE TABLE "{mapping.physical_table}" ("{dob}" TEXT)')
        conn.execute(
            f"INSERT INTO \"{mapping.physical_table}\" VALUES ('19800101'), ('not a date')"
        )
    request = adapter_pb2.ScanRequest(table="offenders", columns=["birth_date"], query_id="f")
    with pytest.raises(
        ConversionError, match=r"table offenders\.birth_date: stored value 'not a date'"
    ):
        run(SqliteBackend("CA-CSC", path), request=request)
