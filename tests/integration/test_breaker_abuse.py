"""One partner cannot open the circuits of the others: queries with a 1 ms
deadline and queries it cancels leave every breaker closed, and another
partner still gets every source. A source that is really down still opens.

Its own federation (the six embedded systems): if the breakers did count
such queries, their open circuits must not disturb other tests.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from accord import tls
from accord.v1 import broker_pb2, broker_pb2_grpc
from accord.workdir import DEFAULT_FEDERATION, Workdir
from app.serve import source_health_name
from tests.integration.conftest import start

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

SQL = "SELECT source, count(*) AS n FROM offenders GROUP BY source"
PLAIN = "SELECT source, surname FROM offenders"
#: What a query that ran out of its deadline ends with.
CUT_SHORT = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
ATTACKS = 12  # more than the breakers' threshold (5), of each kind


@pytest.fixture
def own(tmp_path: Path) -> Iterator[Running]:
    yield from start(Workdir(tmp_path), DEFAULT_FEDERATION)


def channel(running: Running, partner: str) -> grpc.Channel:
    ca, cert, key = running.workdir.partner_credentials(partner)
    return grpc.secure_channel(
        running.address, tls.channel_credentials(ca, cert, key), options=tls.CHANNEL_OPTIONS
    )


def health(running: Running) -> dict[str, int]:
    with channel(running, "crown_attorney") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        return {
            code: stub.Check(
                health_pb2.HealthCheckRequest(service=source_health_name(code)), timeout=5
            ).status
            for code in running.federation.sources
        }


def attack(running: Running) -> None:
    """Queries of every source, each with a 1 ms deadline (with and without a
    partial answer), and queries cancelled while under way."""
    with channel(running, "crown_attorney") as ch:
        stub = broker_pb2_grpc.BrokerStub(ch)
        for i in range(ATTACKS):
            for sql in (SQL, PLAIN):
                request = broker_pb2.QueryRequest(
                    sql=sql,
                    purpose="bail_hearing",
                    case_ref="R-2026-0042",
                    timeout_ms=1,
                    allow_partial=bool(i % 2),
                )
                try:  # with a partial answer, a source may still have made it
                    list(stub.Query(request, timeout=10))
                except grpc.RpcError as exc:
                    assert exc.code() in CUT_SHORT, exc
            call = stub.Query(
                broker_pb2.QueryRequest(
                    sql=PLAIN, purpose="bail_hearing", case_ref="R-2026-0042", timeout_ms=30_000
                ),
                timeout=30,
            )
            time.sleep(0.002 * i)  # cancelled at a different point each time
            call.cancel()


def test_one_partners_short_deadlines_and_cancels_open_no_circuit(own):
    attack(own)
    serving = health_pb2.HealthCheckResponse.SERVING
    statuses = health(own)
    assert statuses == dict.fromkeys(own.federation.sources, serving), statuses
    with own.client("ontario_courts_crown", purpose="bail_hearing", case_ref="R-1") as other:
        result = other.query(SQL)
        states = {s.source: broker_pb2.SourceState.Name(s.state) for s in result.trailer.sources}
        assert states == dict.fromkeys(own.federation.sources, "SOURCE_STATE_OK"), states
        assert not result.trailer.partial
        explained = other.explain(SQL)
    circuits = {s.source: s.circuit for s in explained.scans}
    assert circuits == dict.fromkeys(own.federation.sources, "CLOSED"), circuits

    # A source really down still opens its circuit, and only its own. (In
    # the same test: it kills BC's adapter of the module's federation.)
    process = own.launcher.processes["adapter-bc"]
    process.kill()
    process.wait(timeout=5)
    with own.client("ontario_courts_crown", purpose="bail_hearing", case_ref="R-1") as other:
        for _ in range(6):
            other.query(SQL, allow_partial=True, timeout=10)
        result = other.query(SQL, allow_partial=True, timeout=10)
    down = {s.source: s.state for s in result.trailer.sources}
    assert down.pop("BC") == broker_pb2.SOURCE_STATE_CIRCUIT_OPEN
    assert set(down.values()) == {broker_pb2.SOURCE_STATE_OK}
    statuses = health(own)
    assert statuses.pop("BC") == health_pb2.HealthCheckResponse.NOT_SERVING
    assert set(statuses.values()) == {health_pb2.HealthCheckResponse.SERVING}
