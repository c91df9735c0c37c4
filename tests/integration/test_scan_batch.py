"""ScanBatch against a real adapter (real gRPC, real mTLS, its SQLite file):
each scan of a batch answers exactly as its own Scan call would, a failing
scan fails alone, every scan of a batch is in the adapter's trail, and a
batch out of bounds is refused.

Over the session's federation, with the broker's client key; each test looks
only at the query ids it made.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from accord import tls
from accord.audit.search import search
from accord.v1 import adapter_pb2, adapter_pb2_grpc
from adapters.server import MAX_BATCH_SCANS
from tests.integration.test_source_trace import eventually
from tests.scans import read_scan

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

SOURCE = "BC"


def stub_for(running: Running) -> Iterator[adapter_pb2_grpc.AdapterStub]:
    ca = running.workdir.pki.ca_cert()
    cert, key = running.workdir.pki.broker_client()
    address = running.launcher.adapter_addresses[SOURCE]
    with grpc.secure_channel(address, tls.channel_credentials(ca, cert, key)) as channel:
        yield adapter_pb2_grpc.AdapterStub(channel)


@pytest.fixture
def stub(running: Running) -> Iterator[adapter_pb2_grpc.AdapterStub]:
    yield from stub_for(running)


def alone(stub: adapter_pb2_grpc.AdapterStub, request: adapter_pb2.ScanRequest) -> Any:
    """What one Scan call answers: its messages, or (code, details)."""
    try:
        return list(stub.Scan(request, timeout=10))
    except grpc.RpcError as exc:
        return (exc.code(), exc.details())


def batched(
    stub: adapter_pb2_grpc.AdapterStub, requests: list[adapter_pb2.ScanRequest]
) -> list[Any]:
    """What one ScanBatch call answers for each of its scans, as ``alone`` says it."""
    items: dict[int, list[adapter_pb2.ScanBatchItem]] = {}
    order = []
    for response in stub.ScanBatch(adapter_pb2.ScanBatchRequest(scans=requests), timeout=10):
        assert response.items, "no empty batch message"
        for item in response.items:
            items.setdefault(item.scan, []).append(item)
            order.append(item.scan)
    assert order == sorted(order), "the scans come one after another, in order"
    out: list[Any] = []
    for index in range(len(requests)):
        got = items[index]
        if got[-1].WhichOneof("payload") == "error":
            (error,) = got  # an error is all a failed scan sends here
            out.append((grpc.StatusCode(_code(error.error.code)), error.error.message))
            continue
        out.append([item.response for item in got])
    return out


def _code(value: int) -> Any:
    return next(c.value for c in grpc.StatusCode if c.value[0] == value)


def scan(table: str, columns: list[str], predicate: str = "", **fields: Any) -> Any:
    return adapter_pb2.ScanRequest(
        table=table,
        columns=columns,
        predicate=predicate,
        query_id=f"batch-test-{uuid.uuid4().hex[:8]}",
        partner="crown_attorney",
        **fields,
    )


def person(running: Running) -> str:
    rows = running.generated[SOURCE]["sentences"].to_pylist()
    return str(next(r["fps_number"] for r in rows if r["fps_number"]))


def test_each_scan_of_a_batch_answers_as_its_own_scan_would(running, stub):
    fps = person(running)
    requests = [
        scan("offenders", ["fps_number", "surname", "birth_date"], f"fps_number = '{fps}'"),
        scan("sentences", ["fps_number", "offence_code", "sentence_date"], f"fps_number = '{fps}'"),
        scan("offenders", ["surname"], "status = 'UAL'", limit=3),
        scan("offenders", ["address"]),  # BC does not release addresses: refused alone
        scan("releases", ["fps_number"], "release_date >= DATE '2020-01-01'"),
        scan("offenders", ["surname"], "surname = 'x' AND"),  # not a predicate
        scan("no_such_table", ["x"]),
        scan("alerts", ["alert_type"], explain_only=True),
        scan("aliases", ["alias_surname"], f"fps_number IN ('{fps}', 'nobody')"),
    ]
    expected = [alone(stub, r) for r in requests]
    got = batched(stub, requests)
    assert got == expected
    failed = [e[0] for e in expected if isinstance(e, tuple)]
    assert (
        grpc.StatusCode.PERMISSION_DENIED in failed and grpc.StatusCode.INVALID_ARGUMENT in failed
    )
    assert read_scan(expected[0]).table.num_rows >= 1
    assert read_scan(expected[1]).table.num_rows >= 1
    assert [m.WhichOneof("payload") for m in expected[7]] == ["header"]  # explain only


def test_every_scan_of_a_batch_is_in_the_adapters_trail(running, stub):
    fps = person(running)
    requests = [
        scan("offenders", ["surname"], f"fps_number = '{fps}'"),
        scan("offenders", ["address"]),
        scan("sentences", ["offence_code"], f"fps_number = '{fps}'"),
    ]
    answers = batched(stub, requests)
    ids = {r.query_id: r for r in requests}

    def recorded() -> list[dict[str, Any]] | None:
        records = [
            r for r in search(running.workdir.adapter_audit_dir(SOURCE)) if r["query_id"] in ids
        ]
        return records if len(records) == 2 * len(requests) else None

    records = eventually(recorded, "the batch's records")
    access = {r["query_id"]: r for r in records if r["event"] == "scan"}
    ends = {r["query_id"]: r for r in records if r["event"] == "scan_end"}
    assert set(access) == set(ends) == set(ids)
    # Every access is durable before any scan of the batch ran.
    assert max(r["seq"] for r in access.values()) < min(r["seq"] for r in ends.values())
    outcomes = []
    for request, answer in zip(requests, answers, strict=True):
        record, end = access[request.query_id], ends[request.query_id]
        assert record["table"] == request.table and record["columns"] == list(request.columns)
        assert record["predicate"] == request.predicate and record["partner"] == "crown_attorney"
        assert end["access_seq"] == record["seq"]
        outcomes.append(end["outcome"])
        if end["outcome"] == "OK":
            assert end["rows"] == read_scan(answer).table.num_rows
    assert outcomes == ["OK", "DENIED", "OK"]


@pytest.mark.parametrize("size", [0, MAX_BATCH_SCANS + 1])
def test_a_batch_out_of_bounds_is_refused(running, stub, size):
    requests = [scan("offenders", ["surname"]) for _ in range(size)]
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.ScanBatch(adapter_pb2.ScanBatchRequest(scans=requests), timeout=10))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"1 to {MAX_BATCH_SCANS} scans" in (refused.value.details() or "")


def test_a_partner_certificate_cannot_batch(running):
    ca, cert, key = running.workdir.partner_credentials("police")
    address = running.launcher.adapter_addresses[SOURCE]
    with grpc.secure_channel(address, tls.channel_credentials(ca, cert, key)) as channel:
        stub = adapter_pb2_grpc.AdapterStub(channel)
        request = adapter_pb2.ScanBatchRequest(scans=[scan("offenders", ["surname"])])
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.ScanBatch(request, timeout=5))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
