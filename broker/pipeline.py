"""The path of one query, as plain functions: prepare (admit, validate,
rewrite, plan: ``broker.prepare``), fan out (``broker.fanout``), judge the
scans (``broker.outcome``), merge (``broker.merge``) or stream
(``broker.stream``), release (aggregate-only: ``broker.policy.disclosure``). The gRPC servicer
(``broker.server``) only decodes requests, encodes these results and writes
the audit record the pipeline filled in (``broker.record``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from accord import ipc
from accord.errors import InvalidQuery
from accord.logs import new_query_id
from accord.v1 import broker_pb2
from broker.budget import PrivacyLedger
from broker.fanout import AdapterClients, Budget, ScanResult, run_scans
from broker.merge import Merger
from broker.outcome import check_outcome, source_statuses
from broker.plan_cache import PlanCache
from broker.policy.disclosure import release, release_key
from broker.policy.masks import partner_key
from broker.policy.privacy import query_identity, release_private
from broker.policy.rewrite import RoleView, ViewCache, principal_redactor
from broker.settings import Limits, load_limits
from broker.stream import StreamedQuery, streamable

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    import pyarrow as pa

    from accord.federation import Federation
    from broker.identity import Principal
    from broker.policy.store import PolicySet
    from broker.prepare import PreparedQuery
    from broker.record import QueryRecord
    from broker.scan_batch import GroupMember

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
        ledger: PrivacyLedger | None = None,
    ) -> None:
        self.federation = federation
        # Privacy budgets and released draws (broker.budget); in memory
        # unless the broker gives it the work dir's file.
        self.ledger = ledger if ledger is not None else PrivacyLedger()
        self.limits = limits or load_limits()
        self.clients = clients
        self.policies = policies
        self.mask_secret = mask_secret
        self.merger = Merger(federation, self.limits)
        self.views: ViewCache = {}  # secure views built for this policy
        self.plans = PlanCache()  # prepared templates of repeated shapes, for this policy
        # Parse, policy, planning and releases run here, off the event loop and apart
        # from the default executor (the audit writer's): a heavy query then
        # stalls neither health checks nor other partners' queries.
        # One partner holds all but one of them at most: its further queries
        # wait their turn on the loop, so another partner's always has one.
        self._preparing = ThreadPoolExecutor(
            max_workers=self.limits.prepare_threads, thread_name_prefix="accord-prepare"
        )
        self._partner_share = max(self.limits.prepare_threads - 1, 1)
        self._partner_slots: dict[str, asyncio.Semaphore] = {}

    def use_policies(self, policies: PolicySet) -> None:
        """Puts a reloaded policy in force; secure views and plans are rebuilt
        from it (a query being prepared under the old one fills the old caches)."""
        self.policies, self.views = policies, {}
        self.plans = PlanCache(observe=self.plans.observe)

    async def prepare(
        self, principal: Principal, request: broker_pb2.QueryRequest, query_id: str
    ) -> PreparedQuery:
        """``prepare_query`` in the pipeline's own thread pool. The policy and
        its views are read here, on the event loop where reloads happen, so
        one query is prepared under one policy. A short query whose shape's
        template fits is bound here, on the loop: a copy of a small template
        costs less than the hop to a thread and back."""
        args = (request.sql, principal, self.policies.role_for(principal), self.federation)
        named: dict[str, Any] = {
            "purpose": request.purpose,
            "case_ref": request.case_ref,
            "ref_prefix": f"q{query_id[:8]}_ref",
            "cache": self.views,
        }
        bound = self.plans.bound(*args, **named)
        if bound is not None:
            return bound
        work = functools.partial(self.plans.prepare, *args, **named, shape=self.limits.shape)
        name = principal.partner.name
        slots = self._partner_slots.setdefault(name, asyncio.Semaphore(self._partner_share))
        async with slots:
            return await asyncio.get_running_loop().run_in_executor(self._preparing, work)

    def close(self) -> None:
        """Stops the preparing and merging threads (a query being prepared
        or merged finishes)."""
        self._preparing.shutdown(wait=False, cancel_futures=True)
        self.merger.close()

    def deadline(self, request: broker_pb2.QueryRequest) -> tuple[float, float]:
        """(the query's deadline, the scans' deadline), as monotonic times.

        The scans stop a little earlier, so that with ``allow_partial`` the
        sources that answered can still be merged before the query's own
        deadline: a fifth of the budget, at most one second, is kept back.
        """
        if request.timeout_ms < 0:
            raise InvalidQuery(
                "timeout_ms must not be negative (0 is the broker's default)", "timeout_ms"
            )
        timeout = min(
            request.timeout_ms / 1000 or self.limits.default_timeout_s, self.limits.max_timeout_s
        )
        now = time.monotonic()
        return now + timeout, now + timeout - min(MERGE_RESERVE_S, timeout / 5)

    async def answer(
        self,
        principal: Principal,
        request: broker_pb2.QueryRequest,
        record: QueryRecord | None = None,
    ) -> AsyncGenerator[broker_pb2.QueryResponse, None]:
        """The response stream of one query: streamed batch by batch where the
        query allows it (``broker.stream``), else merged whole. ``record``
        receives what the audit needs as soon as it is known."""
        started = time.monotonic()
        query_id = record.query_id if record is not None else new_query_id()
        deadline, scans_deadline = self.deadline(request)
        prepared = await self.prepare(principal, request, query_id)
        if record is not None:
            record.planned(prepared)
        if streamable(prepared):
            stream = StreamedQuery(self.federation, self.clients, self.merger, self.limits, record)
            key = partner_key(self.mask_secret, principal.partner.name)
            async for message in stream.answer(
                prepared, request, query_id, (deadline, scans_deadline), key, started
            ):
                yield message
            return
        outcome = await self._merged(
            principal, request, prepared, query_id, started, deadline, scans_deadline, record
        )
        for message in encode_answer(outcome):
            yield message

    async def run(
        self,
        principal: Principal,
        request: broker_pb2.QueryRequest,
        record: QueryRecord | None = None,
        member: GroupMember | None = None,
    ) -> QueryOutcome:
        """One query merged whole (what ``answer`` does for non-streamable ones);
        ``record``, when given, receives the plan and each source's totals.
        As a ``member`` of a scan group, its scans go in the group's batches
        (``broker.scan_batch``)."""
        started = time.monotonic()
        query_id = record.query_id if record is not None else new_query_id()
        deadline, scans_deadline = self.deadline(request)
        prepared = await self.prepare(principal, request, query_id)
        if record is not None:
            record.planned(prepared)
        return await self._merged(
            principal,
            request,
            prepared,
            query_id,
            started,
            deadline,
            scans_deadline,
            record,
            member,
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
        record: QueryRecord | None = None,
        member: GroupMember | None = None,
    ) -> QueryOutcome:
        privacy = prepared.view.role.privacy if prepared.release is not None else None
        reservation = None
        if privacy is not None:
            # Before any work: a partner whose budget is spent costs nothing more.
            reservation = self.ledger.reserve(
                principal.partner.name, privacy.epsilon_per_query, privacy.epsilon_per_year
            )
        try:
            table, visible, results, failed = await self._fetch_and_merge(
                principal, request, prepared, query_id, deadline, scans_deadline, record, member
            )
            if prepared.release is not None:
                role = prepared.view.role.name
                key = release_key(self.mask_secret, role)
                if privacy is not None and reservation is not None:
                    private = functools.partial(
                        release_private,
                        table,
                        prepared.release,
                        key,
                        privacy,
                        self.ledger,
                        reservation,
                        role,
                        query_identity(prepared.rewritten_sql),
                    )
                    # Charged (durably) there, before anything of the answer leaves.
                    table, withheld, charge = await asyncio.get_running_loop().run_in_executor(
                        self._preparing, private
                    )
                    if record is not None:
                        record.charged(charge)
                else:
                    work = functools.partial(release, table, prepared.release, key)
                    # A few microseconds a group, up to the result limit: off the
                    # loop, on the threads of the other policy work.
                    table, withheld = await asyncio.get_running_loop().run_in_executor(
                        self._preparing, work
                    )
                if record is not None:
                    record.released(withheld, prepared.release.describe(privacy))
        finally:
            if reservation is not None:
                self.ledger.release(reservation)  # nothing once committed
        # suppressed_groups stays 0 for an aggregate-only answer: a count of
        # the groups withheld would tell an empty cell from a small one.
        trailer = broker_pb2.QueryTrailer(
            query_id=query_id,
            sources=source_statuses(results, visible if prepared.counts_by_source else None),
            rows=table.num_rows,
            elapsed_ms=(time.monotonic() - started) * 1000,
            partial=bool(failed),
        )
        log.info(
            "answered %s: %d rows from %d scans in %.1f ms",
            principal.partner.name,
            table.num_rows,
            len(results),
            trailer.elapsed_ms,
        )
        return QueryOutcome(query_id, table, trailer, prepared, results)

    async def _fetch_and_merge(
        self,
        principal: Principal,
        request: broker_pb2.QueryRequest,
        prepared: PreparedQuery,
        query_id: str,
        deadline: float,
        scans_deadline: float,
        record: QueryRecord | None,
        member: GroupMember | None = None,
    ) -> tuple[pa.Table, dict[str, int], list[ScanResult], list[ScanResult]]:
        """The scans, judged, and their merge: (table, rows visible per source,
        results, failed scans)."""
        plan = prepared.plan
        budget = Budget(self.limits.max_source_rows, self.limits.max_source_bytes)
        results = await run_scans(
            self.clients,
            plan.references,
            query_id,
            scans_deadline,
            fail_fast=not request.allow_partial,
            budget=budget,
            principal=principal,
            member=member,
        )
        if record is not None:
            record.fetched(results)
        failed = check_outcome(results, request.allow_partial)
        tables = self.merger.arrow_tables(plan, results)
        key = partner_key(self.mask_secret, principal.partner.name)
        # Bounded while it runs (time, rows, bytes, memory): broker.merge.
        table, visible = await self.merger.merge(plan, tables, key, deadline)
        return table, visible, results, failed

    async def result_schema(
        self,
        principal: Principal,
        request: broker_pb2.QueryRequest,
        record: QueryRecord | None = None,
    ) -> pa.Schema:
        """The schema ``answer`` would send, without asking any source: the
        query prepared as ``answer`` prepares it (every refusal the same),
        its merge run over empty scans."""
        query_id = record.query_id if record is not None else new_query_id()
        deadline, _ = self.deadline(request)
        prepared = await self.prepare(principal, request, query_id)
        if record is not None:
            record.planned(prepared)
        plan = prepared.plan
        key = partner_key(self.mask_secret, principal.partner.name)
        table, _ = await self.merger.merge(plan, self.merger.arrow_tables(plan, []), key, deadline)
        if prepared.release is not None:
            # Aggregate-only: the released columns (a private release has the
            # same ones); nothing to draw or charge for no rows.
            role_key = release_key(self.mask_secret, prepared.view.role.name)
            table, _ = release(table, prepared.release, role_key)
        return table.schema

    async def explain(
        self,
        principal: Principal,
        request: broker_pb2.QueryRequest,
        record: QueryRecord | None = None,
    ) -> broker_pb2.ExplainResponse:
        query_id = record.query_id if record is not None else new_query_id()
        _, scans_deadline = self.deadline(request)
        prepared = await self.prepare(principal, request, query_id)
        if record is not None:
            record.planned(prepared)
        plan = prepared.plan
        results = await run_scans(
            self.clients,
            plan.references,
            query_id,
            scans_deadline,
            explain_only=True,
            principal=principal,
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
                    aggregate=r.spec.aggregate.describe() if r.spec.aggregate else "",
                    aggregated=r.aggregated,
                    aggregate_declined=h.aggregate_declined if h else "",
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
            **self._privacy_cost(principal, prepared),
        )

    def _privacy_cost(self, principal: Principal, prepared: PreparedQuery) -> dict[str, float]:
        """What the query would cost and what is left, for Explain (nothing charged)."""
        privacy = prepared.view.role.privacy
        if privacy is None or prepared.release is None:
            return {}
        return {
            "privacy_epsilon": privacy.epsilon_per_query,
            "privacy_epsilon_remaining": self.ledger.remaining(
                principal.partner.name, privacy.epsilon_per_year
            ),
        }

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
