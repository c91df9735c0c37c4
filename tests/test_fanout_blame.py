"""Which scan endings count against a source's circuit breaker, through
``run_scans`` with a fake adapter stub (no gRPC server, no processes).

Only the source's own failures count: a deadline shorter than the breakers'
minimum (the caller's budget ran out), a cancel, a per-query limit or a
refusal caused by the request never does. A half-open probe that ends so
gives its place to the next scan instead of holding the circuit shut.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import grpc
import pyarrow as pa
import pytest

from accord import ipc
from accord.errors import CircuitOpen, SourceTimedOut, SourceUnavailable
from accord.federation import load_federation
from accord.v1 import adapter_pb2
from broker.breaker import Breakers, CircuitState
from broker.fanout import AdapterClients, Budget, run_scans
from broker.planner import ScanSpec, TableReference
from tests.conftest import ROOT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from broker.fanout import ScanResult

FEDERATION = load_federation(ROOT / "deploy" / "federation.yaml").with_endpoints({"BC": "fake:1"})
SPEC = ScanSpec("BC", ["surname"], "", 0)
REF = TableReference("ref1", "offenders", "offenders", ["surname"], ["BC"], scans=[SPEC])
SCHEMA = FEDERATION.tables["offenders"].arrow_schema(["surname"])


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


class FakeCall:
    """One Scan call: what ``behaviour`` says the adapter does."""

    def __init__(self, behaviour: str, timeout: float) -> None:
        self.behaviour = behaviour
        self.timeout = timeout
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __aiter__(self) -> AsyncIterator[adapter_pb2.ScanResponse]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[adapter_pb2.ScanResponse]:
        header = adapter_pb2.ScanResponse(
            header=adapter_pb2.ScanHeader(arrow_schema=ipc.schema_to_bytes(SCHEMA))
        )
        codes = {
            "unavailable": grpc.StatusCode.UNAVAILABLE,
            "invalid": grpc.StatusCode.INVALID_ARGUMENT,
            "refused": grpc.StatusCode.PERMISSION_DENIED,
            "cancelled": grpc.StatusCode.CANCELLED,
        }
        if self.behaviour in codes:
            raise rpc_error(codes[self.behaviour], self.behaviour)
        if self.behaviour == "hang":  # gRPC ends the call at its deadline
            await asyncio.sleep(self.timeout)
            raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline")
        yield header
        if self.behaviour == "big":  # more rows than the query's budget allows
            batch = pa.RecordBatch.from_pylist([{"surname": "X"}] * 3, schema=SCHEMA)
            yield adapter_pb2.ScanResponse(arrow_batch=ipc.batch_to_bytes(batch))
        yield adapter_pb2.ScanResponse(trailer=adapter_pb2.ScanTrailer())


class FakeStub:
    def __init__(self, clients: FakeClients) -> None:
        self.clients = clients

    def Scan(self, request: Any, timeout: float) -> FakeCall:
        self.clients.calls += 1
        return FakeCall(self.clients.behaviour, timeout)


class FakeClients(AdapterClients):
    """Adapter clients whose every endpoint behaves as ``behaviour`` says."""

    def __init__(self, breakers: Breakers, behaviour: str = "ok") -> None:
        self.federation = FEDERATION
        self.breakers = breakers
        self.metrics = None
        self._channels = {}
        self.behaviour = behaviour
        self.calls = 0

    async def stub(self, source: str, endpoint: str, deadline: float) -> Any:
        return FakeStub(self)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scan(clients: FakeClients, budget_s: float, rows: int = 2**62) -> ScanResult:
    async def go() -> ScanResult:
        deadline = time.monotonic() + budget_s
        (result,) = await run_scans(clients, [REF], "q", deadline, budget=Budget(rows, 2**62))
        return result

    return asyncio.run(go())


def state(clients: FakeClients) -> CircuitState:
    return clients.breakers["BC"].state


def test_a_deadline_shorter_than_the_minimum_does_not_count():
    clients = FakeClients(Breakers(failure_threshold=1, min_timeout_s=0.5), "hang")
    for budget in (0.001, 0.02, -1.0):  # -1: no time left when the scan starts
        result = scan(clients, budget)
        assert isinstance(result.error, SourceTimedOut)
        assert state(clients) is CircuitState.CLOSED, budget
    assert clients.breakers["BC"].failures == 0


def test_a_timeout_within_a_fair_deadline_counts():
    clients = FakeClients(Breakers(failure_threshold=1, min_timeout_s=0.05), "hang")
    result = scan(clients, 0.1)
    assert isinstance(result.error, SourceTimedOut)
    assert state(clients) is CircuitState.OPEN


def test_an_unreachable_source_counts():
    clients = FakeClients(Breakers(failure_threshold=1, min_timeout_s=5), "unavailable")
    result = scan(clients, 2)
    assert isinstance(result.error, SourceUnavailable)
    assert state(clients) is CircuitState.OPEN


@pytest.mark.parametrize("behaviour", ["invalid", "refused", "cancelled"])
def test_a_refusal_of_the_request_does_not_count(behaviour):
    clients = FakeClients(Breakers(failure_threshold=1), behaviour)
    for _ in range(3):
        assert scan(clients, 5).error is not None
    assert state(clients) is CircuitState.CLOSED


def test_a_per_query_limit_does_not_count():
    clients = FakeClients(Breakers(failure_threshold=1), "big")
    for _ in range(3):
        assert scan(clients, 5, rows=1).exhausted is not None
    assert state(clients) is CircuitState.CLOSED


def test_a_scan_the_caller_cancels_does_not_count():
    clients = FakeClients(Breakers(failure_threshold=1), "hang")

    async def go() -> None:
        task = asyncio.ensure_future(run_scans(clients, [REF], "q", time.monotonic() + 30))
        while clients.calls == 0:  # the scan is under way
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    for _ in range(3):
        asyncio.run(go())
    assert state(clients) is CircuitState.CLOSED


def half_open(behaviour: str) -> FakeClients:
    """Clients whose BC circuit opened on a real failure, reset period over."""
    clock = Clock()
    clients = FakeClients(Breakers(failure_threshold=1, reset_timeout_s=10, clock=clock))
    clients.behaviour = "unavailable"
    scan(clients, 5)
    assert state(clients) is CircuitState.OPEN
    clock.now += 10
    clients.behaviour = behaviour
    return clients


def test_a_probe_cut_short_by_its_caller_lets_the_next_scan_probe():
    """The probe of a half-open circuit, with a 1 ms deadline, does not open
    the circuit again, nor keep the probe's place: the next scan probes."""
    clients = half_open("hang")
    assert isinstance(scan(clients, 0.001).error, SourceTimedOut)
    assert state(clients) is CircuitState.HALF_OPEN
    clients.behaviour = "ok"
    result = scan(clients, 5)
    assert result.error is None and state(clients) is CircuitState.CLOSED


def test_a_cancelled_probe_lets_the_next_scan_probe():
    clients = half_open("hang")

    async def cancelled() -> None:
        task = asyncio.ensure_future(run_scans(clients, [REF], "q", time.monotonic() + 30))
        calls = clients.calls
        while clients.calls == calls:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    clients.behaviour = "ok"
    result = scan(clients, 5)
    assert not isinstance(result.error, CircuitOpen), result.error
    assert result.error is None and state(clients) is CircuitState.CLOSED
