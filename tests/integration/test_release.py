"""Each adapter enforces its jurisdiction's release agreement, whatever it is asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

from accord import ipc, tls
from accord.v1 import adapter_pb2, adapter_pb2_grpc
from tests.integration.conftest import rows

if TYPE_CHECKING:
    import pyarrow as pa

    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration


def scan(
    running: Running, source: str, table: str, columns: list[str], predicate: str = ""
) -> tuple[adapter_pb2.ScanHeader, list[pa.RecordBatch]]:
    cert, key = running.workdir.pki.broker_client()
    credentials = tls.channel_credentials(running.workdir.pki.ca_cert(), cert, key)
    channel = grpc.secure_channel(running.launcher.adapter_addresses[source], credentials)
    try:
        stub = adapter_pb2_grpc.AdapterStub(channel)
        request = adapter_pb2.ScanRequest(table=table, columns=columns, predicate=predicate)
        messages: list[adapter_pb2.ScanResponse] = list(stub.Scan(request, timeout=10))
    finally:
        channel.close()
    header = messages[0].header
    assert messages[-1].WhichOneof("payload") == "trailer"
    batches = [ipc.batch_from_bytes(m.arrow_batch) for m in messages[1:-1]]
    return header, batches


@pytest.mark.parametrize(
    ("source", "table", "columns", "predicate", "named"),
    [
        ("BC", "offenders", ["surname", "address"], "", "column 'address'"),
        ("BC", "offenders", ["surname"], "address LIKE '1%'", "column 'address'"),
        ("QC", "incidents", ["summary"], "", "column 'summary'"),
        ("CA-CSC", "health_notes", ["note"], "", "table 'health_notes'"),
    ],
)
def test_unreleased_data_is_refused_even_to_the_broker(
    running, source, table, columns, predicate, named
):
    with pytest.raises(grpc.RpcError) as caught:
        scan(running, source, table, columns, predicate)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert named in (caught.value.details() or "")


def test_release_row_filter_applies_to_every_scan(running):
    header, batches = scan(running, "YT", "offenders", ["status"])
    statuses = {s for b in batches for s in b.column(0).to_pylist()}
    assert "WARRANT_EXPIRED" not in statuses and "ARCHIVED" in statuses
    assert header.physical_sql.count("?") >= 1  # the filter is in the database query


def test_broker_fills_unreleased_columns_with_null(running, crown):
    result = crown.query("SELECT source, count(summary) FROM incidents GROUP BY 1 ORDER BY 1")
    counts = dict(rows(result.table))
    assert counts["BC"] == 0 and counts["QC"] == 0 and counts["ON"] > 0
