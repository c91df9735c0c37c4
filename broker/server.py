"""The broker's gRPC edge: authenticate, call the pipeline, encode, map errors.

Every method first maps the TLS client certificate to a partner; a caller
the registry does not know never reaches the pipeline. Errors are mapped to
(status, public message) in one place (``accord.errors.grpc_status``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import _async as health_aio  # the asyncio health servicer
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from accord import tls
from accord.errors import AccordError, ConfigError, grpc_status
from accord.v1 import broker_pb2, broker_pb2_grpc
from broker.audit import AuditWriteError
from broker.identity import END_USER_METADATA, PartnerRegistry, Principal

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from broker.audit import AuditLog
    from broker.metrics import BrokerMetrics
    from broker.pipeline import QueryPipeline

log = logging.getLogger("accord.broker")

SERVICE_NAME = broker_pb2.DESCRIPTOR.services_by_name["Broker"].full_name


class BrokerService(broker_pb2_grpc.BrokerServicer):
    def __init__(self, registry: PartnerRegistry, pipeline: QueryPipeline,
                 metrics: BrokerMetrics | None = None, audit: AuditLog | None = None) -> None:
        self.registry = registry
        self.pipeline = pipeline
        self.metrics = metrics
        self.audit = audit

    async def _record(self, record: dict[str, Any]) -> None:
        """Writes one audit record durably, or raises AuditWriteError."""
        if self.audit is None:
            return
        try:
            await asyncio.to_thread(self.audit.append, record)
        except AuditWriteError:
            if self.metrics is not None:
                self.metrics.audit_write_failures.inc()
            raise
        if self.metrics is not None:
            self.metrics.audit_records.inc()

    async def _principal(self, context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
                         method: str) -> Principal:
        metadata = dict(context.invocation_metadata() or ())
        end_user = str(metadata.get(END_USER_METADATA, ""))
        try:
            return self.registry.authenticate(context.auth_context(), end_user)
        except AccordError as exc:
            status, message = grpc_status(exc)
            log.warning("refused caller: %s", message)
            peer = tls.peer_identity(context.auth_context())
            try:
                await self._record({"event": "refused", "method": method,
                                    "certificate_cn": peer[0] if peer else "",
                                    "end_user": end_user, "outcome": status.name,
                                    "error": message})
            except AccordError:
                status, message = grpc.StatusCode.UNAVAILABLE, "the broker cannot audit now"
            await context.abort(status, message)
            raise  # abort raises; this line is for type checkers

    async def Query(
        self, request: broker_pb2.QueryRequest, context: grpc.aio.ServicerContext  # type: ignore[type-arg]
    ) -> AsyncIterator[broker_pb2.QueryResponse]:
        started = time.monotonic()
        principal = await self._principal(context, "Query")
        role = principal.partner.role
        error: Exception | None = None
        trailer = broker_pb2.QueryTrailer()
        notes: dict[str, Any] = {}
        if self.metrics is not None:
            self.metrics.inflight.inc()
        try:
            async for message in self.pipeline.answer(principal, request, notes):
                if message.WhichOneof("payload") == "trailer":
                    trailer = message.trailer
                    # Audited before the answer is complete: no record, no trailer.
                    await self._record(query_record(principal, request, notes, started,
                                                    trailer, None))
                yield message
        except Exception as exc:
            error = exc
            if not isinstance(exc, AuditWriteError):
                try:
                    await self._record(query_record(principal, request, notes, started,
                                                    trailer, exc))
                except AuditWriteError as audit_error:
                    exc = audit_error
            await _abort(context, exc)
        finally:
            if self.metrics is not None:
                self.metrics.inflight.dec()
                self.metrics.query_done(role, error, started, trailer.rows,
                                        trailer.suppressed_groups)

    async def Explain(
        self, request: broker_pb2.QueryRequest, context: grpc.aio.ServicerContext  # type: ignore[type-arg]
    ) -> broker_pb2.ExplainResponse:
        principal = await self._principal(context, "Explain")
        try:
            return await self.pipeline.explain(principal, request)
        except Exception as exc:
            await _abort(context, exc)
            raise

    async def GetCatalog(
        self, request: broker_pb2.CatalogRequest, context: grpc.aio.ServicerContext  # type: ignore[type-arg]
    ) -> broker_pb2.CatalogResponse:
        principal = await self._principal(context, "GetCatalog")
        return self.pipeline.catalog(principal)


def query_record(principal: Principal, request: broker_pb2.QueryRequest,
                 notes: dict[str, Any], started: float, trailer: broker_pb2.QueryTrailer,
                 error: BaseException | None) -> dict[str, Any]:
    """The audit record of one query: who, why, what, from where; no result data."""
    partner = principal.partner
    status, message = grpc_status(error) if error is not None else (grpc.StatusCode.OK, "")
    return {
        "event": "query",
        **notes,
        "partner": partner.name,
        "organization": partner.organization,
        "role": partner.role,
        "certificate_sha256": principal.fingerprint,
        "certificate_serial": str(principal.serial),
        "end_user": principal.end_user,
        "purpose": request.purpose,
        "case_ref": request.case_ref,
        "sql": request.sql,
        "sources": [
            {"source": s.source, "state": broker_pb2.SourceState.Name(s.state),
             "rows": s.rows, "error": s.error}
            for s in trailer.sources
        ],
        "rows_returned": trailer.rows,
        "groups_suppressed": trailer.suppressed_groups,
        "partial": trailer.partial,
        "duration_ms": round((time.monotonic() - started) * 1000, 1),
        "outcome": status.name,
        "error": message,
    }


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:  # type: ignore[type-arg]
    status, message = grpc_status(exc)
    if status == grpc.StatusCode.INTERNAL:
        log.error("internal error", exc_info=exc)
    else:
        log.info("query refused: %s: %s", status.name, message)
    await context.abort(status, message)


async def create_server(
    registry: PartnerRegistry,
    pipeline: QueryPipeline,
    *,
    ca: Path,
    cert: Path,
    key: Path,
    address: str = "127.0.0.1:0",
    metrics: BrokerMetrics | None = None,
    audit: AuditLog | None = None,
) -> tuple[grpc.aio.Server, int, health_aio.HealthServicer]:
    """Builds and starts the broker's server; returns it with its bound port."""
    server = grpc.aio.server(options=tls.SERVER_OPTIONS)
    broker_pb2_grpc.add_BrokerServicer_to_server(
        BrokerService(registry, pipeline, metrics, audit), server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_secure_port(address, tls.server_credentials(ca, cert, key))
    if port == 0:
        raise ConfigError(f"the broker cannot listen on {address}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer
