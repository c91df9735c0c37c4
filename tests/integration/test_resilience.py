"""Retries, replicas and circuit breakers against real adapter processes."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest

from accord.errors import CircuitOpen, SourceUnavailable
from broker.breaker import Breakers, CircuitState
from broker.fanout import MAX_ATTEMPTS, AdapterClients, run_scans
from broker.planner import ScanSpec, TableReference

if TYPE_CHECKING:
    from accord.v1 import adapter_pb2_grpc
    from broker.fanout import ScanResult
    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

#: Nothing listens on these: connection refused, at once.
DEAD = "127.0.0.1:1"
MORE_DEAD = tuple(f"127.0.0.1:{port}" for port in range(1, MAX_ATTEMPTS + 3))


class RecordingClients(AdapterClients):
    """Adapter clients that note the endpoint of every scan attempt."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tried: list[str] = []

    async def stub(
        self, source: str, endpoint: str, deadline: float
    ) -> adapter_pb2_grpc.AdapterStub:
        self.tried.append(endpoint)
        return await super().stub(source, endpoint, deadline)


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scan_bc(
    running: Running,
    endpoints: tuple[str, ...],
    breakers: Breakers | None = None,
    timeout: float = 10.0,
    tried: list[str] | None = None,
) -> ScanResult:
    """One scan of BC's offenders through ``endpoints``; ``tried`` (a list) gets
    the endpoint of each attempt, in order."""
    federation = running.federation.with_endpoints({"BC": endpoints})
    cert, key = running.workdir.pki.broker_client()
    spec = ScanSpec("BC", ["surname"], "", 0)
    ref = TableReference("ref1", "offenders", "offenders", ["surname"], ["BC"], scans=[spec])

    async def go() -> ScanResult:
        ca = running.workdir.pki.ca_cert()
        clients = RecordingClients(federation, ca, cert, key, breakers)
        try:
            (result,) = await run_scans(clients, [ref], "q", time.monotonic() + timeout)
            return result
        finally:
            await clients.close()
            if tried is not None:
                tried.extend(clients.tried)

    return asyncio.run(go())


def test_a_dead_replica_fails_over_to_a_live_one(running):
    live = running.launcher.adapter_addresses["BC"]
    tried: list[str] = []
    result = scan_bc(running, (DEAD, live), tried=tried)
    assert result.error is None and result.rows > 0
    assert tried == [DEAD, live]


def test_transient_failures_are_retried_then_reported(running):
    tried: list[str] = []
    started = time.monotonic()
    result = scan_bc(running, MORE_DEAD, tried=tried)
    assert isinstance(result.error, SourceUnavailable)
    assert "BC" in str(result.error)
    # MAX_ATTEMPTS tries, each on the next replica, then the error; no more.
    assert len(tried) > 1
    assert tried == list(MORE_DEAD[:MAX_ATTEMPTS])
    assert time.monotonic() - started < 5  # quick tries, with a short backoff


def test_an_open_circuit_answers_at_once_and_a_probe_closes_it(running):
    clock = FakeClock()
    breakers = Breakers(failure_threshold=2, reset_timeout_s=30, clock=clock)
    live = running.launcher.adapter_addresses["BC"]
    for _ in range(2):
        scan_bc(running, (DEAD,), breakers)
    assert breakers.states()["BC"] is CircuitState.OPEN

    tried: list[str] = []
    result = scan_bc(running, (live,), breakers, tried=tried)
    assert isinstance(result.error, CircuitOpen)
    assert tried == []  # not even tried

    clock.now += 29.5  # not yet the reset period: still open
    result = scan_bc(running, (live,), breakers, tried=tried)
    assert isinstance(result.error, CircuitOpen) and tried == []

    clock.now += 0.5  # the reset period is over: one probe goes through
    result = scan_bc(running, (live,), breakers, tried=tried)
    assert result.error is None and tried == [live]
    assert breakers.states()["BC"] is CircuitState.CLOSED
