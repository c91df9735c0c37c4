"""Streaming: a plain query over one table passes through batch by batch.

``SELECT <columns and scalar expressions> FROM t WHERE ... [LIMIT n]`` over
one secure view whose row filter needs no other table can be answered one
source batch at a time: each batch goes through the view and the query in
DuckDB and straight on to the caller, so the broker never holds a whole
source in memory. Everything else (joins, aggregates, ordering, subqueries,
aggregate-only roles) is merged whole (``broker.pipeline``).

A source that fails after some of its rows went out cannot take them back:
the query then fails, whatever ``allow_partial`` says, rather than pass off
part of that source as all of it. One that fails before sending anything is
left out of a partial answer as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from accord import ipc
from accord.catalog import SOURCE_COLUMN
from accord.errors import ResourceExhausted
from accord.v1 import broker_pb2
from broker.fanout import Budget, ScanResult, run_scans
from broker.merge import aligned
from broker.outcome import check_outcome, source_statuses
from broker.planner import plain_select
from broker.policy.rewrite import SECURE_VIEW

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from accord.federation import Federation
    from broker.fanout import AdapterClients
    from broker.merge import Merger
    from broker.planner import QueryPlan
    from broker.prepare import PreparedQuery
    from broker.record import QueryRecord
    from broker.settings import Limits

#: Batches read ahead of the caller: memory stays bounded by this many.
QUEUE_DEPTH = 8


def streamable(prepared: PreparedQuery) -> bool:
    plan = prepared.plan
    if prepared.min_group_size or len(plan.references) != 1 or len(plan.views) != 1:
        return False
    tree = plan.merge
    if not isinstance(tree, exp.Select) or not plain_select(tree) or tree.args.get("offset"):
        return False
    limit = tree.args.get("limit")
    if limit is not None and _limit(plan) is None:
        return False  # only a literal LIMIT can be applied batch by batch
    _, view = plan.views[0]
    from_ = tree.args.get("from_")
    source = from_.this if from_ is not None else None
    return bool(
        isinstance(source, exp.Table)
        and source.name == plan.views[0][0]
        and view.meta.get(SECURE_VIEW)
        and plain_select(view)
    )


class StreamedQuery:
    """Answers one streamable query with what a pipeline holds (see the
    module docstring); ``record`` receives what each source did."""

    def __init__(
        self,
        federation: Federation,
        clients: AdapterClients,
        merger: Merger,
        limits: Limits,
        record: QueryRecord | None = None,
    ) -> None:
        self.federation = federation
        self.clients = clients
        self.merger = merger
        self.limits = limits
        self.record = record

    async def answer(
        self,
        prepared: PreparedQuery,
        request: broker_pb2.QueryRequest,
        query_id: str,
        deadlines: tuple[float, float],
        key: bytes,
        started: float,
    ) -> AsyncIterator[broker_pb2.QueryResponse]:
        """Header, batches as they come, trailer. ``deadlines``: the query's
        (each batch's merge stops there) and the scans'."""
        deadline, scans_deadline = deadlines
        plan = prepared.plan
        ref = plan.references[0]
        logical = self.federation.tables[ref.table]
        schema = logical.arrow_schema(ref.columns).append(pa.field(SOURCE_COLUMN, pa.string()))
        limit = _limit(plan)
        queue: asyncio.Queue[tuple[ScanResult, pa.RecordBatch] | None] = asyncio.Queue(QUEUE_DEPTH)
        budget = Budget(self.limits.max_source_rows, self.limits.max_source_bytes)

        async def scans() -> list[ScanResult]:
            try:
                return await run_scans(
                    self.clients,
                    plan.references,
                    query_id,
                    scans_deadline,
                    fail_fast=not request.allow_partial,
                    budget=budget,
                    sink=queue,  # type: ignore[arg-type]
                    principal=prepared.view.principal,
                )
            finally:
                with contextlib.suppress(asyncio.QueueFull):  # nobody reads a full queue now
                    queue.put_nowait(None)

        task = asyncio.create_task(scans())
        sent = 0
        visible: dict[str, int] = {}
        headed = False
        try:
            while (item := await queue.get()) is not None:
                result, batch = item
                if not batch.num_rows:
                    # A plain SELECT over a plain view: no rows in, none out
                    # and none visible; a point lookup's other sources cost nothing.
                    continue
                answer, seen = await self._through(plan, result, batch, schema, key, deadline)
                if not headed:  # the answer's schema, from its first merged batch
                    headed = True
                    yield _header(query_id, answer)
                for source, count in seen.items():
                    visible[source] = visible.get(source, 0) + count
                if limit is not None:
                    answer = answer.slice(0, max(limit - sent, 0))
                sent = self._counted(sent, answer)
                for out in answer.to_batches(max_chunksize=ipc.BATCH_ROWS):
                    yield broker_pb2.QueryResponse(arrow_batch=ipc.batch_to_bytes(out))
                if limit is not None and sent >= limit:
                    break
        finally:
            if not task.done():
                task.cancel()  # enough rows, or the caller left: stop every scan
        try:
            results = await task
        except asyncio.CancelledError:  # stopped at the LIMIT: every source did its part
            results = [ScanResult(s.source, ref, s) for s in ref.scans]
        if self.record is not None:
            self.record.fetched(results)
        failed = check_outcome(results, request.allow_partial, streamed=True)
        if not headed:  # no row at all: the schema from the query over no rows
            empty, _ = await self.merger.merge(
                plan, {ref.ref_id: schema.empty_table()}, key, deadline
            )
            yield _header(query_id, empty)
        yield broker_pb2.QueryResponse(
            trailer=broker_pb2.QueryTrailer(
                query_id=query_id,
                sources=source_statuses(results, visible if prepared.counts_by_source else None),
                rows=sent,
                elapsed_ms=(time.monotonic() - started) * 1000,
                partial=bool(failed),
            )
        )

    async def _through(
        self,
        plan: QueryPlan,
        result: ScanResult,
        batch: pa.RecordBatch,
        schema: pa.Schema,
        key: bytes,
        deadline: float,
    ) -> tuple[pa.Table, dict[str, int]]:
        """One source batch through the view and the query: (answer, visible per source)."""
        ref = plan.references[0]
        received = self.federation.tables[ref.table].arrow_schema(result.spec.columns)
        table = aligned(pa.Table.from_batches([batch]), result.source, received, schema)
        return await self.merger.merge(plan, {ref.ref_id: table}, key, deadline)

    def _counted(self, sent: int, answer: pa.Table) -> int:
        """Rows sent with ``answer``; past the result bound, ResourceExhausted."""
        sent += answer.num_rows
        if sent > self.limits.max_result_rows:
            raise ResourceExhausted(
                f"the answer passed {self.limits.max_result_rows} rows "
                "(ACCORD_MAX_RESULT_ROWS); add a LIMIT or narrow the query"
            )
        return sent


def _header(query_id: str, answer: pa.Table) -> broker_pb2.QueryResponse:
    return broker_pb2.QueryResponse(
        header=broker_pb2.QueryHeader(
            query_id=query_id, arrow_schema=ipc.schema_to_bytes(answer.schema)
        )
    )


def _limit(plan: QueryPlan) -> int | None:
    limit = plan.merge.args.get("limit")
    if limit is None:
        return None
    value = limit.expression
    return int(value.this) if isinstance(value, exp.Literal) and value.is_int else None
