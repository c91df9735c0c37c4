"""Retries, replicas and circuit breakers against real adapter processes."""

from __future__ import annotations

import asyncio
import time

import pytest

from accord.errors import CircuitOpen, SourceUnavailable
from broker.breaker import Breakers, CircuitState
from broker.fanout import MAX_ATTEMPTS, AdapterClients, run_scans
from broker.planner import ScanSpec, TableReference

pytestmark = pytest.mark.integration

DEAD = "127.0.0.1:1"  # nothing listens there: connection refused


def scan_bc(running, endpoints, breakers=None, timeout=10.0):
    federation = running.federation.with_endpoints({"BC": endpoints})
    cert, key = running.workdir.pki.broker_client()
    spec = ScanSpec("BC", ["surname"], "", 0)
    ref = TableReference("ref1", "offenders", "offenders", ["surname"], ["BC"], scans=[spec])

    async def go():
        clients = AdapterClients(federation, running.workdir.pki.ca_cert(), cert, key, breakers)
        try:
            (result,) = await run_scans(clients, [ref], "q", time.monotonic() + timeout)
            return result
        finally:
            await clients.close()

    return asyncio.run(go())


def test_a_dead_replica_fails_over_to_a_live_one(running):
    live = running.launcher.adapter_addresses["BC"]
    result = scan_bc(running, (DEAD, live))
    assert result.error is None and result.rows > 0


def test_transient_failures_are_retried_then_reported(running):
    started = time.monotonic()
    result = scan_bc(running, (DEAD,))
    assert isinstance(result.error, SourceUnavailable)
    assert "BC" in str(result.error)
    assert time.monotonic() - started < 5  # MAX_ATTEMPTS quick tries, with backoff
    assert MAX_ATTEMPTS >= 2


def test_an_open_circuit_answers_at_once_and_a_probe_closes_it(running):
    breakers = Breakers(failure_threshold=2, reset_timeout_s=0.5)
    for _ in range(2):
        scan_bc(running, (DEAD,), breakers)
    assert breakers.states()["BC"] is CircuitState.OPEN
    started = time.monotonic()
    result = scan_bc(running, (running.launcher.adapter_addresses["BC"],), breakers)
    assert isinstance(result.error, CircuitOpen)
    assert time.monotonic() - started < 0.2  # not even tried
    time.sleep(0.6)
    result = scan_bc(running, (running.launcher.adapter_addresses["BC"],), breakers)
    assert result.error is None
    assert breakers.states()["BC"] is CircuitState.CLOSED
