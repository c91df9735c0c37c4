"""Bounded memory: per-query limits on what each source may send and on the
answer are RESOURCE_EXHAUSTED naming the limit, never an out-of-memory kill."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING

import grpc
import pytest

from accord.errors import ResourceExhausted, grpc_status
from accord.v1 import broker_pb2
from broker.fanout import AdapterClients
from broker.identity import Principal
from broker.pipeline import QueryPipeline
from broker.settings import load_limits

if TYPE_CHECKING:
    from broker.pipeline import QueryOutcome
    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration


def run_query(running: Running, sql: str, **limits: int) -> QueryOutcome:
    env = {f"ACCORD_{k.upper()}": str(v) for k, v in limits.items()}
    federation = running.federation.with_endpoints(running.launcher.adapter_addresses)
    partner = running.policy.registry.partners["crown_attorney"]
    principal = Principal(partner, "", 0, dt.datetime.now(dt.UTC))
    cert, key = running.workdir.pki.broker_client()
    request = broker_pb2.QueryRequest(sql=sql, purpose="bail_hearing", case_ref="R-1")

    async def go() -> QueryOutcome:
        clients = AdapterClients(federation, running.workdir.pki.ca_cert(), cert, key)
        pipeline = QueryPipeline(
            federation, clients, running.policy, running.workdir.mask_secret(), load_limits(env)
        )
        try:
            return await pipeline.run(principal, request)
        finally:
            await clients.close()

    return asyncio.run(go())


def test_a_source_sending_too_many_rows_stops_the_query(running):
    with pytest.raises(
        ResourceExhausted, match=r"more than 50 rows .*ACCORD_MAX_SOURCE_ROWS"
    ) as caught:
        run_query(running, "SELECT surname FROM offenders", max_source_rows=50)
    # what the partner is answered: RESOURCE_EXHAUSTED, naming the limit
    code, message = grpc_status(caught.value)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "ACCORD_MAX_SOURCE_ROWS" in message


def test_a_source_sending_too_many_bytes_stops_the_query(running):
    with pytest.raises(ResourceExhausted, match="ACCORD_MAX_SOURCE_BYTES"):
        run_query(running, "SELECT * FROM sentences", max_source_bytes=10_000)


def test_an_answer_over_the_limit_is_refused(running):
    with pytest.raises(ResourceExhausted, match="ACCORD_MAX_RESULT_ROWS"):
        run_query(running, "SELECT surname FROM offenders", max_result_rows=100)


def test_within_the_limits_the_answer_is_whole(running):
    outcome = run_query(running, "SELECT count(*) FROM offenders", max_result_rows=1)
    assert outcome.table.num_rows == 1
