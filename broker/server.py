"""The broker's gRPC edge: authenticate, call the pipeline, encode, map errors.

Every method first maps the TLS client certificate to a partner; a caller
the registry does not know never reaches the pipeline. Errors are mapped to
(status, public message) in one place (``accord.errors.grpc_status``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import _async as health_aio  # the asyncio health servicer
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from accord import tls
from accord.errors import AccordError, AuditWriteError, ConfigError, grpc_status
from accord.logs import bind_query_id, current_query_id, new_query_id
from accord.metadata import END_USER_METADATA
from accord.v1 import broker_pb2, broker_pb2_grpc
from broker.readiness import Readiness
from broker.record import QueryRecord, write_audit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from broker.audit.log import AuditLog
    from broker.identity import PartnerRegistry, Principal
    from broker.metrics import BrokerMetrics
    from broker.pipeline import QueryPipeline

log = logging.getLogger("accord.broker")

SERVICE_NAME = broker_pb2.DESCRIPTOR.services_by_name["Broker"].full_name


class BrokerService(broker_pb2_grpc.BrokerServicer):
    def __init__(
        self,
        pipeline: QueryPipeline,
        metrics: BrokerMetrics | None = None,
        audit: AuditLog | None = None,
        readiness: Readiness | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.audit = audit
        self.readiness = readiness

    @property
    def registry(self) -> PartnerRegistry:
        """The partners of the policy in force (a reload replaces both at once)."""
        return self.pipeline.policies.registry

    async def _record(self, record: dict[str, Any]) -> None:
        """Writes one audit record durably, or raises AuditWriteError."""
        if current_query_id():
            record.setdefault("query_id", current_query_id())
        await write_audit(record, self.audit, self.metrics, self.readiness)

    async def _principal(
        self,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
        method: str,
    ) -> Principal:
        metadata = dict(context.invocation_metadata() or ())
        end_user = str(metadata.get(END_USER_METADATA, ""))
        try:
            return self.registry.authenticate(context.auth_context(), end_user)
        except AccordError as exc:
            status, message = grpc_status(exc)
            log.warning("refused caller: %s", message)
            peer = tls.peer_identity(context.auth_context())
            try:
                await self._record(
                    {
                        "event": "refused",
                        "method": method,
                        "certificate_cn": peer[0] if peer else "",
                        "end_user": end_user,
                        "outcome": status.name,
                        "error": message,
                    }
                )
            except AccordError:
                status, message = grpc.StatusCode.UNAVAILABLE, "the broker cannot audit now"
            await context.abort(status, message)
            raise  # abort raises; this line is for type checkers

    async def Query(
        self,
        request: broker_pb2.QueryRequest,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> AsyncIterator[broker_pb2.QueryResponse]:
        started = time.monotonic()
        with bind_query_id(new_query_id()) as query_id:
            async for message in self._query(request, context, started, query_id):
                yield message

    async def _query(
        self,
        request: broker_pb2.QueryRequest,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
        started: float,
        query_id: str,
    ) -> AsyncIterator[broker_pb2.QueryResponse]:
        principal = await self._principal(context, "Query")
        record = QueryRecord.open("query", query_id, principal, request, started)
        done = _QueryDone(self.metrics, principal.partner.role, started)
        trailer: broker_pb2.QueryTrailer | None = None
        try:
            async for message in self.pipeline.answer(principal, request, record):
                if message.WhichOneof("payload") == "trailer":
                    trailer = message.trailer
                    # Audited and counted before the answer is complete: no
                    # record, no trailer; and a caller that has its answer
                    # finds it in the metrics.
                    await self._record(record.as_dict(trailer, None))
                    done(None, trailer)
                yield message
        except Exception as exc:
            done(exc, trailer)  # before the caller learns of it
            if not isinstance(exc, AuditWriteError):
                try:
                    await self._record(record.as_dict(trailer, exc))
                except AuditWriteError as audit_error:
                    exc = audit_error
            await _abort(context, exc)
        finally:
            done(None, trailer)  # the caller left mid-answer

    async def Explain(
        self,
        request: broker_pb2.QueryRequest,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> broker_pb2.ExplainResponse:
        """Audited like a query (it shows the policy applied, and contacts the
        sources), with ``event: explain``; no record, no plan."""
        started = time.monotonic()
        with bind_query_id(new_query_id()) as query_id:
            principal = await self._principal(context, "Explain")
            record = QueryRecord.open("explain", query_id, principal, request, started)
            error: Exception | None = None
            try:
                plan = await self.pipeline.explain(principal, request, record)
            except Exception as exc:
                error = exc
            try:
                await self._record(record.as_dict(None, error))
            except AuditWriteError as audit_error:
                error = audit_error
            if error is not None:
                await _abort(context, error)
                raise error
            return plan

    async def GetCatalog(
        self,
        request: broker_pb2.CatalogRequest,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> broker_pb2.CatalogResponse:
        with bind_query_id(new_query_id()):
            principal = await self._principal(context, "GetCatalog")
            partner = principal.partner
            try:
                await self._record(
                    {
                        "event": "catalog",
                        "partner": partner.name,
                        "organization": partner.organization,
                        "role": partner.role,
                        "certificate_sha256": principal.fingerprint,
                        "end_user": principal.end_user,
                        "outcome": "OK",
                    }
                )
            except AuditWriteError as exc:
                await _abort(context, exc)
                raise
            return self.pipeline.catalog(principal)


class _QueryDone:
    """Counts one query in the metrics, once, however it ends."""

    def __init__(self, metrics: BrokerMetrics | None, role: str, started: float) -> None:
        self.metrics, self.role, self.started = metrics, role, started
        self.counted = metrics is None
        if metrics is not None:
            metrics.inflight.inc()

    def __call__(self, error: Exception | None, trailer: broker_pb2.QueryTrailer | None) -> None:
        if self.counted or self.metrics is None:
            return
        self.counted = True
        self.metrics.inflight.dec()
        self.metrics.query_done(
            self.role,
            error,
            self.started,
            trailer.rows if trailer is not None else 0,
            trailer.suppressed_groups if trailer is not None else 0,
        )


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:  # type: ignore[type-arg]
    status, message = grpc_status(exc)
    if status == grpc.StatusCode.INTERNAL:
        log.error("internal error", exc_info=exc)
    else:
        log.info("query refused: %s: %s", status.name, message)
    await context.abort(status, message)


async def create_server(
    pipeline: QueryPipeline,
    credentials: grpc.ServerCredentials,
    *,
    address: str = "127.0.0.1:0",
    metrics: BrokerMetrics | None = None,
    audit: AuditLog | None = None,
    readiness_interval_s: float = 2.0,
) -> tuple[grpc.aio.Server, int, Readiness]:
    """Builds and starts the broker's server; returns it with its bound port
    and its readiness, whose ``health`` servicer also serves per-source health.

    Health (overall and for the Broker service) follows the readiness probe,
    which runs until ``readiness.stop()`` or the end of the event loop.
    """
    server = grpc.aio.server(options=tls.SERVER_OPTIONS)
    health_servicer = health_aio.HealthServicer()
    readiness = Readiness(health_servicer, ("", SERVICE_NAME), audit, readiness_interval_s)
    broker_pb2_grpc.add_BrokerServicer_to_server(
        BrokerService(pipeline, metrics, audit, readiness), server
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_secure_port(address, credentials)  # see accord.tls
    if port == 0:
        raise ConfigError(f"the broker cannot listen on {address}")
    await server.start()
    await readiness.check()
    readiness.start()
    return server, port, readiness
