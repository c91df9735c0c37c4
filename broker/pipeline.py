"""The path of one query, as plain functions: admit, parse, rewrite, plan
(``broker.prepare``), fan out, merge, suppress small groups. The gRPC
servicer (``broker.server``) only decodes requests and encodes these results.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from accord import ipc
from accord.errors import (
    CircuitOpen,
    InvalidQuery,
    ResourceExhausted,
    ScanCancelled,
    SourceError,
    SourceRefused,
    SourceTimedOut,
    SourceUnavailable,
)
from accord.logs import new_query_id
from accord.telemetry import scan_outcome
from accord.v1 import broker_pb2
from broker.fanout import AdapterClients, Budget, ScanResult, run_scans
from broker.merge import Merger
from broker.policy.aggregate import PERSON_COUNT_PREFIX
from broker.policy.masks import partner_key
from broker.policy.rewrite import RoleView, ViewCache, principal_redactor
from broker.prepare import PreparedQuery, prepare_query
from broker.settings import Limits, load_limits
from broker.stream import stream_answer, streamable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from accord.federation import Federation
    from broker.identity import Principal
    from broker.policy.store import PolicySet

log = logging.getLogger("accord.broker")

#: The most of a query's budget kept back from the scans for the merge.
MERGE_RESERVE_S = 1.0


@dataclass
class QueryOutcome:
    query_id: str
    table: pa.Table
    trailer: broker_pb2.QueryTrailer
    prepared: PreparedQuery
    results: list[ScanResult] = field(default_factory=list)


class QueryPipeline:
    def __init__(
        self,
        federation: Federation,
        clients: AdapterClients,
        policies: PolicySet,
        mask_secret: bytes,
        limits: Limits | None = None,
    ) -> None:
        self.federation = federation
        self.limits = limits or load_limits()
        self.clients = clients
        self.policies = policies
        self.mask_secret = mask_secret
        self.merger = Merger(federation)
        self.views: ViewCache = {}  # secure views built for this policy

    def use_policies(self, policies: PolicySet) -> None:
        """Puts a reloaded policy in force; secure views are rebuilt from it."""
        self.policies, self.views = policies, {}

    def prepare(
        self, principal: Principal, request: broker_pb2.QueryRequest, query_id: str
    ) -> PreparedQuery:
        return prepare_query(
            request.sql,
            principal,
            self.policies.role_for(principal),
            self.federation,
            purpose=request.purpose,
            case_ref=request.case_ref,
            ref_prefix=f"q{query_id[:8]}_ref",
            cache=self.views,
        )

    def deadline(self, request: broker_pb2.QueryRequest) -> tuple[float, float]:
        """(the query's deadline, the scans' deadline), as monotonic times.

        The scans stop a little earlier, so that with ``allow_partial`` the
        sources that answered can still be merged before the query's own
        deadline: a fifth of the budget, at most one second, is kept back.
        """
        if request.timeout_ms < 0:
            raise InvalidQuery("timeout_ms must not be negative")
        timeout = min(
            request.timeout_ms / 1000 or self.limits.default_timeout_s, self.limits.max_timeout_s
        )
        now = time.monotonic()
        return now + timeout, now + timeout - min(MERGE_RESERVE_S, timeout / 5)

    async def answer(
        self,
        principal: Principal,
        request: broker_pb2.QueryRequest,
        notes: dict[str, Any] | None = None,
        query_id: str = "",
    ) -> AsyncIterator[broker_pb2.QueryResponse]:
        """The response stream of one query: streamed batch by batch where the
        query allows it (``broker.stream``), else merged whole. ``notes``
        receives what the audit record needs as soon as it is known."""
        started = time.monotonic()
        query_id = query_id or new_query_id()
        notes = {} if notes is None else notes
        notes["query_id"] = query_id
        deadline, scans_deadline = self.deadline(request)
        prepared = self.prepare(principal, request, query_id)
        notes.update(audit_details(prepared))
        if streamable(prepared):
            key = partner_key(self.mask_secret, principal.partner.name)
            async for message in stream_answer(
                self, prepared, request, query_id, scans_deadline, key, started, notes
            ):
                yield message
            return
        outcome = await self._merged(
            principal, request, prepared, query_id, started, deadline, scans_deadline, notes
        )
        for message in encode_answer(outcome):
            yield message

    async def run(self, principal: Principal, request: broker_pb2.QueryRequest) -> QueryOutcome:
        """One query merged whole (what ``answer`` does for non-streamable ones)."""
        started = time.monotonic()
        query_id = new_query_id()
        deadline, scans_deadline = self.deadline(request)
        prepared = self.prepare(principal, request, query_id)
        return await self._merged(
            principal, request, prepared, query_id, started, deadline, scans_deadline
        )

    async def _merged(
        self,
        principal: Principal,
        request: broker_pb2.QueryRequest,
        prepared: PreparedQuery,
        query_id: str,
        started: float,
        deadline: float,
        scans_deadline: float,
        notes: dict[str, Any] | None = None,
    ) -> QueryOutcome:
        plan = prepared.plan
        budget = Budget(self.limits.max_source_rows, self.limits.max_source_bytes)
        results = await run_scans(
            self.clients,
            plan.references,
            query_id,
            scans_deadline,
            fail_fast=not request.allow_partial,
            budget=budget,
        )
        if notes is not None:
            notes["fetched"] = fetched_by_source(results)
        exhausted = next((r.exhausted for r in results if r.exhausted is not None), None)
        if exhausted is not None:
            raise exhausted
        failed = [r for r in results if r.error is not None]
        if failed and not request.allow_partial:
            raise missing_sources_error(failed)
        tables = self.merger.arrow_tables(plan, results)
        remaining = deadline - time.monotonic()
        key = partner_key(self.mask_secret, principal.partner.name)
        try:
            table, visible = await asyncio.wait_for(
                asyncio.to_thread(self.merger.run, plan, tables, key),
                timeout=max(remaining, 0.001),
            )
        except TimeoutError:
            raise SourceTimedOut("merge", "the query ran past its deadline while merging") from None
        if (
            table.num_rows > self.limits.max_result_rows
            or table.nbytes > self.limits.max_result_bytes
        ):
            raise ResourceExhausted(
                f"the answer has {table.num_rows} rows ({table.nbytes} bytes), over the limit "
                f"of {self.limits.max_result_rows} rows / {self.limits.max_result_bytes} bytes "
                "(ACCORD_MAX_RESULT_ROWS, ACCORD_MAX_RESULT_BYTES); add a LIMIT or narrow it"
            )
        suppressed = 0
        if prepared.min_group_size:
            table, suppressed = suppress_small_groups(table, prepared.min_group_size)
        trailer = broker_pb2.QueryTrailer(
            query_id=query_id,
            sources=source_statuses(results, None if prepared.min_group_size else visible),
            rows=table.num_rows,
            elapsed_ms=(time.monotonic() - started) * 1000,
            partial=bool(failed),
            suppressed_groups=suppressed,
        )
        log.info(
            "answered %s: %d rows from %d scans in %.1f ms",
            principal.partner.name,
            table.num_rows,
            len(results),
            trailer.elapsed_ms,
        )
        return QueryOutcome(query_id, table, trailer, prepared, results)

    async def explain(
        self,
        principal: Principal,
        request: broker_pb2.QueryRequest,
        query_id: str = "",
        notes: dict[str, Any] | None = None,
    ) -> broker_pb2.ExplainResponse:
        query_id = query_id or new_query_id()
        _, scans_deadline = self.deadline(request)
        prepared = self.prepare(principal, request, query_id)
        if notes is not None:
            notes.update(audit_details(prepared))
        plan = prepared.plan
        results = await run_scans(
            self.clients, plan.references, query_id, scans_deadline, explain_only=True
        )
        redact = principal_redactor(prepared.view)
        scans = []
        for r in results:
            h = r.header
            scans.append(
                broker_pb2.SourceScan(
                    source=r.source,
                    table=r.reference.table,
                    reference=r.reference.name_in_query,
                    columns=r.spec.columns,
                    predicate=redact(r.spec.predicate),
                    limit=r.spec.limit,
                    dialect=h.dialect if h else "",
                    physical_sql=h.physical_sql if h else "",
                    pushed_predicates=[redact(p) for p in h.pushed_predicates] if h else [],
                    residual_predicates=[redact(p) for p in h.residual_predicates] if h else [],
                    superset_predicates=[redact(p) for p in h.superset_predicates] if h else [],
                    limit_pushed=h.limit_pushed if h else False,
                    error=redact(str(r.error)) if r.error else "",
                    circuit=self.clients.breakers[r.source].state.name,
                )
            )
        return broker_pb2.ExplainResponse(
            query_id=query_id,
            validated_sql=prepared.validated_sql,
            merge_sql=redact(plan.merge_sql),
            scans=scans,
            rewritten_sql=redact(prepared.rewritten_sql),
            role=prepared.view.role.name,
            purpose=request.purpose,
            masks=[redact(m) for m in prepared.masks],
            row_filters=[redact(f) for f in prepared.row_filters],
            min_group_size=prepared.min_group_size,
        )

    def catalog(self, principal: Principal) -> broker_pb2.CatalogResponse:
        """Only what this caller may see: its role's grants within what sources release."""
        role = self.policies.role_for(principal)
        view = RoleView(role, principal, self.federation)
        tables = []
        for name, columns in view.schema().items():
            entries = []
            for column, type_name in columns.items():
                mask = view.mask_of(name, column) if column != "source" else None
                entries.append(
                    broker_pb2.CatalogColumn(
                        name=column, type=type_name, mask=mask.describe() if mask else ""
                    )
                )
            sources = [s.code for s in self.federation.sources_serving(name)]
            tables.append(broker_pb2.CatalogTable(name=name, columns=entries, sources=sources))
        return broker_pb2.CatalogResponse(
            partner=principal.partner.name,
            role=role.name,
            tables=tables,
            purposes=sorted(role.purposes),
            case_reference_required=role.case_reference_required,
            aggregate_only=role.aggregate_only,
        )


_STATE = {
    SourceTimedOut: broker_pb2.SOURCE_STATE_TIMED_OUT,
    SourceUnavailable: broker_pb2.SOURCE_STATE_UNAVAILABLE,
    CircuitOpen: broker_pb2.SOURCE_STATE_CIRCUIT_OPEN,
    SourceRefused: broker_pb2.SOURCE_STATE_REFUSED,
}


@dataclass
class SourceTotals:
    """One source over all its scans in a query."""

    scans: int = 0
    rows: int = 0  # sent by the source: hidden rows included
    bytes: int = 0
    elapsed_ms: float = 0.0  # the slowest scan
    error: SourceError | None = None  # the first


def totals_by_source(results: list[ScanResult]) -> dict[str, SourceTotals]:
    totals: dict[str, SourceTotals] = {}
    for r in results:
        t = totals.setdefault(r.source, SourceTotals())
        t.scans += 1
        t.rows += r.rows
        t.bytes += r.bytes
        t.elapsed_ms = max(t.elapsed_ms, r.elapsed_ms)
        t.error = t.error or r.error
    return totals


def source_statuses(
    results: list[ScanResult], visible: dict[str, int] | None
) -> list[broker_pb2.SourceStatus]:
    """Per source over all its scans: state, rows, slowest scan.

    ``rows`` counts the rows of that source the caller's views held, never
    the raw rows fetched (those include rows the policy hides, and would
    tell how many). Aggregate-only callers get no counts at all
    (``visible`` is None): a source's count under their filter would give
    away a group the answer suppressed.
    """
    return [
        broker_pb2.SourceStatus(
            source=source,
            scans=t.scans,
            elapsed_ms=t.elapsed_ms,
            state=(
                broker_pb2.SOURCE_STATE_OK
                if t.error is None
                else _STATE.get(type(t.error), broker_pb2.SOURCE_STATE_ERROR)
            ),
            error=t.error.reason if t.error else "",
            rows=(visible or {}).get(source, 0),
        )
        for source, t in sorted(totals_by_source(results).items())
    ]


def fetched_by_source(results: list[ScanResult]) -> dict[str, dict[str, Any]]:
    """What each source did: scans, outcome, rows and bytes sent (hidden rows
    included). For the audit trail only: a caller must never learn these
    counts (see ``source_statuses``)."""
    return {
        source: {
            "scans": t.scans,
            "outcome": scan_outcome(t.error),
            "error": t.error.reason if t.error else "",
            "rows": t.rows,
            "bytes": t.bytes,
            "elapsed_ms": round(t.elapsed_ms, 1),
        }
        for source, t in totals_by_source(results).items()
    }


def missing_sources_error(failed: list[ScanResult]) -> SourceUnavailable:
    """Names the sources that failed, not those the broker stopped because of them."""
    culprits = [r for r in failed if not isinstance(r.error, ScanCancelled)] or failed
    failed = culprits
    reasons = sorted({f"{r.source} ({r.error.reason})" for r in failed if r.error})
    return SourceUnavailable(
        ", ".join(sorted({r.source for r in failed})),
        f"missing from the answer: {'; '.join(reasons)}. Retry later, or set "
        "allow_partial to accept an answer without them",
    )


def audit_details(prepared: PreparedQuery) -> dict[str, Any]:
    """What the audit keeps of a planned query (never any result data)."""
    touched: dict[str, list[str]] = {}
    for ref in prepared.plan.references:
        touched.setdefault(ref.table, [])
        touched[ref.table] = sorted({*touched[ref.table], *ref.columns})
    return {
        "rewritten_sql_sha256": hashlib.sha256(prepared.rewritten_sql.encode()).hexdigest(),
        "tables": touched,
        "masks": prepared.masks,
        "row_filters": prepared.row_filters,
    }


def suppress_small_groups(table: pa.Table, k: int) -> tuple[pa.Table, int]:
    """Drops output groups where any table's persons number fewer than ``k``;
    returns (kept, dropped)."""
    counts = [name for name in table.column_names if name.startswith(PERSON_COUNT_PREFIX + "_")]
    keep = pa.array([True] * table.num_rows)
    for name in counts:
        keep = pc.and_(keep, pc.greater_equal(table.column(name), k))
    kept = table.filter(keep).drop_columns(counts)
    return kept, table.num_rows - kept.num_rows


def encode_answer(outcome: QueryOutcome) -> list[broker_pb2.QueryResponse]:
    """The response stream: header with schema, one message per batch, trailer."""
    messages = [
        broker_pb2.QueryResponse(
            header=broker_pb2.QueryHeader(
                query_id=outcome.query_id, arrow_schema=ipc.schema_to_bytes(outcome.table.schema)
            )
        )
    ]
    messages += [
        broker_pb2.QueryResponse(arrow_batch=ipc.batch_to_bytes(b))
        for b in outcome.table.to_batches(max_chunksize=ipc.BATCH_ROWS)
    ]
    messages.append(broker_pb2.QueryResponse(trailer=outcome.trailer))
    return messages
