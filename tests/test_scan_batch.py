"""broker.scan_batch: several queries' scans of one source in one call.

The adapter's side is a scripted call here (what a real adapter sends is in
tests/integration/test_scan_batch.py); what is checked is the routing: who
waits for whom, which scan gets which message, and how a call's end, an
error or a consumer going away reaches each scan.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from accord.errors import SourceUnavailable
from accord.metadata import ADAPTER_ERROR_METADATA
from accord.v1 import adapter_pb2
from broker.scan_batch import QUEUE_MESSAGES, ScanFailed, ScanGroup

HEADER = adapter_pb2.ScanResponse(header=adapter_pb2.ScanHeader(source="BC"))
TRAILER = adapter_pb2.ScanResponse(trailer=adapter_pb2.ScanTrailer())


def batch(*items: tuple[int, Any]) -> adapter_pb2.ScanBatchResponse:
    out = []
    for index, payload in items:
        if isinstance(payload, adapter_pb2.ScanError):
            out.append(adapter_pb2.ScanBatchItem(scan=index, error=payload))
        else:
            out.append(adapter_pb2.ScanBatchItem(scan=index, response=payload))
    return adapter_pb2.ScanBatchResponse(items=out)


def rows(n: int) -> adapter_pb2.ScanResponse:
    return adapter_pb2.ScanResponse(arrow_batch=f"batch {n}".encode())


class Call:
    """A ScanBatch call that sends what the test puts in ``script``."""

    def __init__(self, request: adapter_pb2.ScanBatchRequest, timeout: float) -> None:
        self.request, self.timeout = request, timeout
        self.script: asyncio.Queue[Any] = asyncio.Queue()
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.script.put_nowait(
            grpc.aio.AioRpcError(
                grpc.StatusCode.CANCELLED, grpc.aio.Metadata(), grpc.aio.Metadata(), "", None
            )
        )

    async def __aiter__(self) -> Any:
        while True:
            step = await self.script.get()
            if step is None:
                return
            if isinstance(step, BaseException):
                raise step
            yield step


class Stub:
    def __init__(self) -> None:
        self.calls: list[Call] = []

    def ScanBatch(self, request: adapter_pb2.ScanBatchRequest, timeout: float) -> Call:
        call = Call(request, timeout)
        self.calls.append(call)
        return call


def fake_stub() -> Any:
    """A Stub, typed as the AdapterStub it stands for."""
    return Stub()


def request(name: str) -> adapter_pb2.ScanRequest:
    return adapter_pb2.ScanRequest(table=name, query_id=name)


async def read(scan: Any) -> list[Any]:
    """A scan's messages, and the error that ended it if any."""
    out: list[Any] = []
    try:
        async for message in scan:
            out.append(message)
    except (grpc.aio.AioRpcError, ScanFailed, SourceUnavailable) as exc:
        out.append(exc)
    return out


async def settled() -> None:
    """Lets every ready task run (the reader routing what the call sent)."""
    for _ in range(20):
        await asyncio.sleep(0)


def test_the_scans_of_every_member_go_to_each_source_in_one_call():
    async def run() -> None:
        stubs = {"BC": fake_stub(), "ON": fake_stub()}
        group = ScanGroup(3)
        members = [group.member() for _ in range(3)]
        scans = {}
        for m, member in enumerate(members):
            for ticket, source in zip(member.arrive(["BC", "ON"]), ["BC", "ON"], strict=True):
                scans[(m, source)] = ticket.scan(
                    stubs[source], request(f"q{m}-{source}"), timeout=5.0 + m
                )
        for source, stub in stubs.items():
            (call,) = stub.calls
            assert [r.query_id for r in call.request.scans] == [f"q{m}-{source}" for m in range(3)]
            assert call.timeout == 7.0  # the latest deadline of its scans
            # The adapter packs quick scans together; scan 1 sends two batches.
            call.script.put_nowait(batch((0, HEADER), (0, TRAILER), (1, HEADER), (1, rows(1))))
            call.script.put_nowait(batch((1, rows(2)), (1, TRAILER), (2, HEADER), (2, TRAILER)))
            call.script.put_nowait(None)
        got = {key: await read(scan) for key, scan in scans.items()}
        for source in stubs:
            assert got[(0, source)] == [HEADER, TRAILER]
            assert got[(1, source)] == [HEADER, rows(1), rows(2), TRAILER]
            assert got[(2, source)] == [HEADER, TRAILER]

    asyncio.run(run())


def test_no_call_goes_until_every_member_arrived_or_left():
    async def run() -> None:
        stub = fake_stub()
        group = ScanGroup(3)
        first, second, third = (group.member() for _ in range(3))
        (ticket,) = first.arrive(["BC"])
        ticket.scan(stub, request("a"), timeout=5)
        (other,) = second.arrive(["BC"])
        assert not stub.calls  # the second member's scan is still on its way
        other.scan(stub, request("b"), timeout=5)
        assert not stub.calls  # the third member has not arrived
        third.leave()  # refused before its scans: it has none
        third.leave()  # leaving twice is leaving once
        (call,) = stub.calls
        assert [r.query_id for r in call.request.scans] == ["a", "b"]

    asyncio.run(run())


def test_a_scan_given_up_before_it_was_asked_is_left_out():
    async def run() -> None:
        stub = fake_stub()
        group = ScanGroup(2)
        (open_circuit,) = group.member().arrive(["BC"])
        (asked,) = group.member().arrive(["BC"])
        asked.scan(stub, request("asked"), timeout=5)
        assert not stub.calls
        open_circuit.settle()  # e.g. its circuit is open: it never asks
        (call,) = stub.calls
        assert [r.query_id for r in call.request.scans] == ["asked"]

    asyncio.run(run())


def test_a_failed_scan_fails_alone_with_the_adapters_words():
    async def run() -> None:
        stub = fake_stub()
        group = ScanGroup(3)
        tickets = [group.member().arrive(["BC"])[0] for _ in range(3)]
        scans = [t.scan(stub, request(str(i)), timeout=5) for i, t in enumerate(tickets)]
        denied = adapter_pb2.ScanError(
            code=grpc.StatusCode.PERMISSION_DENIED.value[0], message="BC does not release it"
        )
        (call,) = stub.calls
        call.script.put_nowait(
            batch((0, HEADER), (0, TRAILER), (1, denied), (2, HEADER), (2, TRAILER))
        )
        call.script.put_nowait(None)
        first, failed, last = [await read(s) for s in scans]
        assert first == last == [HEADER, TRAILER]
        (error,) = failed
        assert isinstance(error, ScanFailed)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error.details() == "BC does not release it"
        assert (ADAPTER_ERROR_METADATA, "1") in error.trailing_metadata()

    asyncio.run(run())


def test_an_error_of_the_call_ends_every_scan_still_open():
    async def run() -> None:
        stub = fake_stub()
        group = ScanGroup(3)
        tickets = [group.member().arrive(["BC"])[0] for _ in range(3)]
        scans = [t.scan(stub, request(str(i)), timeout=5) for i, t in enumerate(tickets)]
        (call,) = stub.calls
        call.script.put_nowait(batch((0, HEADER), (0, TRAILER), (1, HEADER)))
        gone = grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone", None
        )
        call.script.put_nowait(gone)
        done, midway, never = [await read(s) for s in scans]
        assert done == [HEADER, TRAILER]
        assert midway == [HEADER, gone]
        assert never == [gone]

    asyncio.run(run())


def test_a_scan_the_adapter_never_reached_ends_with_nothing():
    """The call ended cleanly before its last scan: that scan has no header,
    which the fan-out reports as the adapter's fault."""

    async def run() -> None:
        stub = fake_stub()
        group = ScanGroup(2)
        tickets = [group.member().arrive(["BC"])[0] for _ in range(2)]
        scans = [t.scan(stub, request(str(i)), timeout=5) for i, t in enumerate(tickets)]
        (call,) = stub.calls
        call.script.put_nowait(batch((0, HEADER), (0, TRAILER)))
        call.script.put_nowait(None)
        assert [await read(s) for s in scans] == [[HEADER, TRAILER], []]

    asyncio.run(run())


@pytest.mark.parametrize(
    "items",
    [
        [(1, HEADER), (0, HEADER)],  # back to an earlier scan
        [(0, HEADER), (0, TRAILER), (0, rows(1))],  # more after its trailer
        [(5, HEADER)],  # a scan it was not asked
    ],
)
def test_a_batch_out_of_order_fails_the_scans_still_open(items):
    async def run() -> None:
        stub = fake_stub()
        group = ScanGroup(2)
        tickets = [group.member().arrive(["BC"])[0] for _ in range(2)]
        scans = [t.scan(stub, request(str(i)), timeout=5) for i, t in enumerate(tickets)]
        (call,) = stub.calls
        call.script.put_nowait(batch(*items))
        results = [await read(s) for s in scans]
        errors = [r[-1] for r in results if r and isinstance(r[-1], SourceUnavailable)]
        assert errors and all("out of order" in str(e) for e in errors)
        assert call.cancelled

    asyncio.run(run())


def test_an_empty_batch_message_fails_the_scans():
    async def run() -> None:
        stub = fake_stub()
        (ticket,) = ScanGroup(1).member().arrive(["BC"])
        scan = ticket.scan(stub, request("a"), timeout=5)
        stub.calls[0].script.put_nowait(adapter_pb2.ScanBatchResponse())
        (error,) = await read(scan)
        assert isinstance(error, SourceUnavailable) and "empty batch message" in str(error)

    asyncio.run(run())


def test_the_call_is_cancelled_once_no_scan_of_it_is_wanted():
    async def run() -> None:
        stub = fake_stub()
        group = ScanGroup(2)
        tickets = [group.member().arrive(["BC"])[0] for _ in range(2)]
        scans = [t.scan(stub, request(str(i)), timeout=5) for i, t in enumerate(tickets)]
        (call,) = stub.calls
        call.script.put_nowait(batch((0, HEADER)))
        await settled()
        scans[0].cancel()  # e.g. its query's budget ran out
        assert not call.cancelled  # the other scan still wants it
        scans[1].cancel()
        assert call.cancelled

    asyncio.run(run())


def test_a_scan_nobody_reads_holds_the_batch_back_only_until_it_is_given_up():
    """A scan's messages queue up to QUEUE_MESSAGES; then the reader waits
    for it (memory stays bounded), and giving the scan up lets the others on."""

    async def run() -> None:
        stub = fake_stub()
        group = ScanGroup(2)
        slow, quick = (group.member().arrive(["BC"])[0] for _ in range(2))
        slow_scan = slow.scan(stub, request("slow"), timeout=5)
        quick_scan = quick.scan(stub, request("quick"), timeout=5)
        (call,) = stub.calls
        many = [(0, HEADER)] + [(0, rows(i)) for i in range(3 * QUEUE_MESSAGES)] + [(0, TRAILER)]
        call.script.put_nowait(batch(*many, (1, HEADER), (1, TRAILER)))
        call.script.put_nowait(None)
        await settled()
        assert len(slow.items) == QUEUE_MESSAGES  # bounded, and the reader waits
        reading = asyncio.ensure_future(read(quick_scan))
        await settled()
        assert not reading.done()  # held back behind the slow scan
        slow_scan.cancel()
        assert await reading == [HEADER, TRAILER]

    asyncio.run(run())


def test_a_member_arrives_once():
    member = ScanGroup(1).member()
    member.arrive([])
    with pytest.raises(RuntimeError):
        member.arrive([])
