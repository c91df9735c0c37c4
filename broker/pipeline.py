"""The path of one query, as plain functions: admit, parse, rewrite, plan,
fan out, merge. The gRPC servicer (``broker.server``) only decodes requests
and encodes these results.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from accord import ipc
from accord.errors import InvalidQuery, SourceTimedOut, SourceUnavailable
from accord.v1 import broker_pb2
from broker.fanout import AdapterClients, ScanResult, run_scans
from broker.merge import Merger
from broker.planner import QueryPlan, plan_query
from broker.validate import parse_query

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlglot import exp

    from accord.federation import Federation
    from broker.identity import Principal

log = logging.getLogger("accord.broker")

#: Deadline when the client gives none, and the most a client may ask for.
DEFAULT_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 300.0


@dataclass
class QueryOutcome:
    query_id: str
    table: pa.Table
    trailer: broker_pb2.QueryTrailer
    plan: QueryPlan
    results: list[ScanResult] = field(default_factory=list)


def apply_policy(
    tree: exp.Query, principal: Principal, request: broker_pb2.QueryRequest
) -> exp.Query:
    """The policy rewrite step (secure views, masks, row filters).

    The walking skeleton passes the validated tree through unchanged; the
    need-to-know policy engine replaces this step. It runs after validation
    and before planning, so every pushed predicate is already the rewritten one.
    """
    return tree


class QueryPipeline:
    def __init__(self, federation: Federation, clients: AdapterClients) -> None:
        self.federation = federation
        self.clients = clients
        self.merger = Merger(federation)

    def plan(self, principal: Principal, request: broker_pb2.QueryRequest,
             query_id: str) -> tuple[str, QueryPlan]:
        """(the validated SQL as sqlglot re-generates it, the plan)."""
        tree = parse_query(request.sql, self.federation.tables)
        validated = tree.sql(dialect="duckdb")
        tree = apply_policy(tree, principal, request)
        return validated, plan_query(tree, self.federation, ref_prefix=f"q{query_id[:8]}_ref")

    def deadline(self, request: broker_pb2.QueryRequest) -> float:
        if request.timeout_ms < 0:
            raise InvalidQuery("timeout_ms must not be negative")
        timeout = min(request.timeout_ms / 1000 or DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S)
        return time.monotonic() + timeout

    async def run(self, principal: Principal, request: broker_pb2.QueryRequest) -> QueryOutcome:
        started = time.monotonic()
        query_id = uuid.uuid4().hex
        deadline = self.deadline(request)
        _, plan = self.plan(principal, request, query_id)
        results = await run_scans(self.clients, plan.references, query_id, deadline)
        failed = [r for r in results if r.error is not None]
        if failed and not request.allow_partial:
            raise _missing_sources_error(failed)
        tables = self.merger.arrow_tables(plan, results)
        remaining = deadline - time.monotonic()
        try:
            table = await asyncio.wait_for(
                asyncio.to_thread(self.merger.run, plan, tables), timeout=max(remaining, 0.001)
            )
        except TimeoutError:
            raise SourceTimedOut("merge", "the query ran past its deadline while merging") from None
        trailer = broker_pb2.QueryTrailer(
            query_id=query_id,
            sources=source_statuses(results),
            rows=table.num_rows,
            elapsed_ms=(time.monotonic() - started) * 1000,
            partial=bool(failed),
        )
        log.info("query %s by %s: %d rows from %d scans in %.1f ms", query_id,
                 principal.partner.name, table.num_rows, len(results), trailer.elapsed_ms)
        return QueryOutcome(query_id, table, trailer, plan, results)

    async def explain(self, principal: Principal,
                      request: broker_pb2.QueryRequest) -> broker_pb2.ExplainResponse:
        query_id = uuid.uuid4().hex
        deadline = self.deadline(request)
        validated, plan = self.plan(principal, request, query_id)
        results = await run_scans(self.clients, plan.references, query_id, deadline,
                                  explain_only=True)
        scans = []
        for r in results:
            h = r.header
            scans.append(broker_pb2.SourceScan(
                source=r.source, table=r.reference.table, reference=r.reference.alias,
                columns=r.spec.columns, predicate=r.spec.predicate, limit=r.spec.limit,
                dialect=h.dialect if h else "", physical_sql=h.physical_sql if h else "",
                pushed_predicates=list(h.pushed_predicates) if h else [],
                residual_predicates=list(h.residual_predicates) if h else [],
                limit_pushed=h.limit_pushed if h else False,
                error=str(r.error) if r.error else "",
            ))
        return broker_pb2.ExplainResponse(
            query_id=query_id, validated_sql=validated, merge_sql=plan.merge_sql, scans=scans
        )

    def catalog(self, principal: Principal) -> broker_pb2.CatalogResponse:
        tables = []
        for name, table in self.federation.tables.items():
            sources = [s.code for s in self.federation.sources_serving(name)]
            if not sources:
                continue
            columns = [broker_pb2.CatalogColumn(name=c, type=table.columns[c])
                       for c in self.federation.released_columns(name)]
            columns.append(broker_pb2.CatalogColumn(name="source", type="VARCHAR"))
            tables.append(broker_pb2.CatalogTable(name=name, columns=columns, sources=sources))
        return broker_pb2.CatalogResponse(
            partner=principal.partner.name, role=principal.partner.role, tables=tables
        )


_STATE = {
    SourceTimedOut: broker_pb2.SOURCE_STATE_TIMED_OUT,
    SourceUnavailable: broker_pb2.SOURCE_STATE_UNAVAILABLE,
}


def source_statuses(results: list[ScanResult]) -> list[broker_pb2.SourceStatus]:
    """Per source over all its scans: state, rows, bytes, slowest scan."""
    statuses: dict[str, broker_pb2.SourceStatus] = {}
    for r in results:
        status = statuses.setdefault(
            r.source, broker_pb2.SourceStatus(source=r.source, state=broker_pb2.SOURCE_STATE_OK)
        )
        status.scans += 1
        status.rows += r.rows
        status.bytes += r.bytes
        status.elapsed_ms = max(status.elapsed_ms, r.elapsed_ms)
        if r.error is not None and status.state == broker_pb2.SOURCE_STATE_OK:
            status.state = _STATE.get(type(r.error), broker_pb2.SOURCE_STATE_ERROR)
            status.error = r.error.reason
    return sorted(statuses.values(), key=lambda s: s.source)


def _missing_sources_error(failed: list[ScanResult]) -> SourceUnavailable:
    reasons = sorted({f"{r.source} ({r.error.reason})" for r in failed if r.error})
    return SourceUnavailable(
        ", ".join(sorted({r.source for r in failed})),
        f"missing from the answer: {'; '.join(reasons)}. Retry later, or set "
        "allow_partial to accept an answer without them",
    )


def encode_answer(outcome: QueryOutcome) -> list[broker_pb2.QueryResponse]:
    """The response stream: header with schema, one message per batch, trailer."""
    messages = [broker_pb2.QueryResponse(header=broker_pb2.QueryHeader(
        query_id=outcome.query_id, arrow_schema=ipc.schema_to_bytes(outcome.table.schema)
    ))]
    messages += [
        broker_pb2.QueryResponse(arrow_batch=ipc.batch_to_bytes(b))
        for b in outcome.table.to_batches(max_chunksize=ipc.BATCH_ROWS)
    ]
    messages.append(broker_pb2.QueryResponse(trailer=outcome.trailer))
    return messages
