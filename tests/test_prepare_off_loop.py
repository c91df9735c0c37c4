"""Parse, policy and planning run off the event loop, in the pipeline's own
bounded pool: one partner's heavy (allowed) queries stall neither the loop
(health checks) nor another partner's small query."""

from __future__ import annotations

import asyncio
import time

from accord.v1 import broker_pb2
from broker.pipeline import QueryPipeline
from tests import inprocess

#: Allowed (under every shape limit) but slow to parse and rewrite: ~1 s.
HEAVY = "SELECT surname FROM offenders WHERE " + " OR ".join(
    f"surname = 's{i}'" for i in range(800)
)
SIMPLE = "SELECT surname FROM offenders LIMIT 1"


def _request(sql: str) -> broker_pb2.QueryRequest:
    return broker_pb2.QueryRequest(sql=sql, purpose="investigation", case_ref="CASE-1")


async def _measure() -> tuple[float, float, float]:
    """(the loop's longest stall, the small query's latency, the heavy ones' time)."""
    pipeline = QueryPipeline(
        inprocess.FEDERATION,
        None,  # type: ignore[arg-type]  # prepare asks no adapter
        inprocess.POLICIES[0],
        inprocess.SECRET,
    )
    heavy_partner = inprocess.principal("police")
    other = inprocess.principal("toronto_police_service")
    stall = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal stall
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            stall, last = max(stall, now - last), now

    async def heavy() -> None:
        await asyncio.gather(
            *(pipeline.prepare(heavy_partner, _request(HEAVY), f"h{i}") for i in range(6))
        )

    tick = asyncio.create_task(ticker())
    started = time.monotonic()
    heavy_task = asyncio.create_task(heavy())
    await asyncio.sleep(0.05)  # the heavy queries hold their threads
    small_started = time.monotonic()
    await pipeline.prepare(other, _request(SIMPLE), "small")
    small = time.monotonic() - small_started
    await heavy_task
    heavy_s = time.monotonic() - started
    done.set()
    await tick
    pipeline.close()
    return stall, small, heavy_s


def test_a_heavy_query_stalls_neither_the_loop_nor_another_partner():
    stall, small, heavy_s = asyncio.run(_measure())
    # before: the loop stalled for the whole of the heavy queries (~6 s), and
    # the small query waited behind them; generous bounds, far from both
    assert small < heavy_s / 2, (small, heavy_s)
    assert stall < 1.0, (stall, heavy_s)
