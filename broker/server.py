"""The broker's gRPC edge: authenticate, admit the request's fields, call the
pipeline, encode, map errors.

Every method first maps the TLS client certificate to a partner; a caller
the registry does not know never reaches the pipeline. Then every field the
caller sent is bounded and refused early, never echoed (:func:`admit_request`):
the end user (metadata ``x-accord-end-user``, at most :data:`MAX_END_USER`
printable ASCII characters), the SQL (``ACCORD_MAX_SQL_BYTES``), purpose and
case reference (normalized and checked by ``broker.policy.admission``).
A request body that does not decode (corrupt protobuf, a string field that
is not UTF-8) would fail inside grpc before any servicer runs, and the caller
would see UNKNOWN: the methods are registered here with a lenient
deserializer (:func:`lenient`) that hands the servicer an
:class:`Undecodable` instead, which it refuses with INVALID_ARGUMENT (audited
like any refusal). Errors are mapped to (status, public message) in one place
(``accord.errors.grpc_status``), and every failed call ends with
``accord.errors.rich_status``: the message with the query id, and the
``ErrorInfo``/``BadRequest``/``RetryInfo`` details programs read. Every call
carries its query id in the trailing metadata (``x-accord-query-id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import _async as health_aio  # the asyncio health servicer
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from accord import ipc, tls
from accord.errors import (
    AccordError,
    AuditWriteError,
    ClientCancelled,
    ConfigError,
    InvalidQuery,
    OverQuota,
    SlowReader,
    grpc_status,
    rich_status,
)
from accord.logs import bind_query_id, current_query_id, new_query_id
from accord.metadata import END_USER_METADATA, QUERY_ID_METADATA
from accord.v1 import broker_pb2, broker_pb2_grpc
from broker.history.assemble import History
from broker.history.audit import history_record
from broker.history.linkage import LinkageModel
from broker.history.request import admit_history
from broker.identity import MAX_END_USER
from broker.policy.admission import admitted_case_ref, admitted_purpose
from broker.quota import Admission
from broker.readiness import Readiness
from broker.record import MAX_PUBLIC_MESSAGE, QueryRecord, bounded, write_audit
from broker.slow_reader import write_bounded

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import pyarrow as pa
    from google.protobuf.message import Message

    from accord.audit.log import AuditLog
    from accord.revocation import RevocationList
    from broker.identity import PartnerRegistry, Principal
    from broker.metrics import BrokerMetrics
    from broker.pipeline import QueryPipeline
    from broker.quota import Ticket

log = logging.getLogger("accord.broker")

SERVICE_NAME = broker_pb2.DESCRIPTOR.services_by_name["Broker"].full_name

_T = TypeVar("_T")


def as_query_response(message: broker_pb2.QueryResponse) -> list[tuple[Message, int]]:
    """The Broker service's own encoding: the message as it is."""
    size = len(message.arrow_batch) if message.WhichOneof("payload") == "arrow_batch" else 0
    return [(message, size)]


@dataclasses.dataclass(frozen=True)
class Undecodable:
    """A request body that is not a valid message of its type."""

    message_type: str


def lenient(
    message_type: type[Message], metrics: BrokerMetrics | None = None
) -> Callable[[bytes], Message | Undecodable]:
    """``message_type.FromString``, answering (and counting) :class:`Undecodable`
    for a body that does not parse (protobuf checks a string field is UTF-8 then too)."""
    name = message_type.DESCRIPTOR.full_name

    def decode(data: bytes) -> Message | Undecodable:
        try:
            return message_type.FromString(data)
        except DecodeError:
            if metrics is not None:
                metrics.malformed_requests.labels("undecodable").inc()
            return Undecodable(name)

    return decode


def check_call(request: Message | Undecodable, principal: Principal) -> None:
    """Refuses a body that did not decode, or an unusable end user."""
    if isinstance(request, Undecodable):
        raise InvalidQuery(
            f"the request is not a valid {request.message_type} "
            "(corrupt, or a text field that is not UTF-8)",
            field="",
        )
    end_user = principal.end_user
    if len(end_user) > MAX_END_USER or not all(" " <= c <= "~" for c in end_user):
        raise InvalidQuery(
            f"the end user ({END_USER_METADATA}) is up to {MAX_END_USER} characters "
            "of printable ASCII",
            field=END_USER_METADATA,
        )


def admit_request(
    request: broker_pb2.QueryRequest | Undecodable, principal: Principal, max_sql_bytes: int
) -> broker_pb2.QueryRequest:
    """The request with every field checked, purpose and case reference
    normalized; or the refusal naming the first field out of bounds."""
    check_call(request, principal)
    assert isinstance(request, broker_pb2.QueryRequest)  # checked: it decoded
    size = len(request.sql.encode())
    if size > max_sql_bytes:
        raise InvalidQuery(f"sql is {size} bytes; the limit is {max_sql_bytes} bytes")
    admitted = broker_pb2.QueryRequest()
    admitted.CopyFrom(request)
    admitted.purpose = admitted_purpose(request.purpose)
    admitted.case_ref = admitted_case_ref(request.case_ref)
    return admitted


class BrokerService(broker_pb2_grpc.BrokerServicer):
    def __init__(
        self,
        pipeline: QueryPipeline,
        metrics: BrokerMetrics | None = None,
        audit: AuditLog | None = None,
        readiness: Readiness | None = None,
        revocations: RevocationList | None = None,
        linkage: LinkageModel | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.linkage = linkage or LinkageModel.load()
        self.metrics = metrics
        self.audit = audit
        self.readiness = readiness
        self.revocations = revocations
        # Per-partner load, kept apart from the policy so a reload changes
        # the limits, never the counts (broker.quota).
        self.admission = Admission()

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
            principal = self.registry.authenticate(
                context.auth_context(), end_user, revocations=self.revocations
            )
        except AccordError as exc:
            status, message = grpc_status(exc)
            log.warning("refused caller: %s", message)
            if self.metrics is not None:
                self.metrics.malformed_requests.labels("unknown_caller").inc()
            peer = tls.peer_identity(context.auth_context())
            cut: dict[str, int] = {}
            try:
                await self._record(
                    {
                        "event": "refused",
                        "method": method,
                        "certificate_cn": peer[0] if peer else "",
                        "end_user": bounded(end_user, MAX_END_USER, cut, "end_user"),
                        "outcome": status.name,
                        "error": message,
                        **({"truncated": cut} if cut else {}),
                    }
                )
            except AccordError as audit_error:
                await _abort(context, audit_error)
                raise
            await _abort(context, exc)
            raise  # abort raises; this line is for type checkers
        # The end user as sent, so that check_call judges (and the record
        # bounds) what the caller sent, not a cut of it.
        return dataclasses.replace(principal, end_user=end_user)

    async def Query(
        self,
        request: broker_pb2.QueryRequest | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> None:
        """Writes the answer with ``context.write`` (not as a generator): a
        client's cancel then raises here, at the write it interrupts, and the
        record is closed at once, not whenever a suspended generator is
        collected."""
        started = time.monotonic()
        with bind_query_id(new_query_id()) as query_id:
            principal = await self._principal(context, "Query")
            await self.run_query(request, context, principal, started, query_id)

    async def authenticate(
        self,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
        method: str,
    ) -> Principal:
        """The caller, or the call ended (and recorded) as refused."""
        return await self._principal(context, method)

    async def run_query(
        self,
        request: broker_pb2.QueryRequest | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
        principal: Principal,
        started: float,
        query_id: str,
        encode: Callable[[broker_pb2.QueryResponse], list[tuple[Message, int]]] = (
            as_query_response
        ),
        interface: str = "",
    ) -> None:
        """One query answered on ``context``, as ``Query`` answers it: the same
        admission, policy, limits, audit and metrics; ``encode`` says how each
        message of the answer is written, ``interface`` names the endpoint in
        the audit record."""
        record = self._open("query", query_id, principal, request, started)
        record.interface = interface
        done = _QueryDone(self.metrics, principal.partner.role, started, record)
        answer = _Answer(record)
        ticket: Ticket | None = None
        try:
            await context.send_initial_metadata(((QUERY_ID_METADATA, query_id),))
            context.set_trailing_metadata(((QUERY_ID_METADATA, query_id),))
            ticket = self._admit(principal)
            admitted = admit_request(request, principal, self.pipeline.limits.max_sql_bytes)
            record.admitted(admitted)
            messages = self.pipeline.answer(principal, admitted, record)
            async with contextlib.aclosing(messages):  # a cancel stops the scans too
                async for message in messages:
                    await self._send(context, answer, message, done, ticket, encode)
        except asyncio.CancelledError:
            # The client cancelled, its deadline passed, or the server stops.
            cancelled = ClientCancelled(f"the call was cancelled after {answer.rows} rows")
            await self._close_unanswerable(answer, cancelled, done)
            raise
        except SlowReader as exc:
            # A write stalled past the bound: record it and end the call
            # without a status, which grpc could not send past the stalled
            # write anyway (broker.slow_reader).
            await self._close_unanswerable(answer, exc, done)
            raise asyncio.CancelledError from None
        except Exception as exc:
            done(exc, answer.trailer)  # before the caller learns of it
            closing = answer.closing(exc)
            if closing is not None and not isinstance(exc, AuditWriteError):
                try:
                    await self._record(closing)
                except AuditWriteError as audit_error:
                    exc = audit_error
            await _abort(context, exc)
        finally:
            done(None, answer.trailer)
            if ticket is not None:
                ticket.close()

    async def _close_unanswerable(
        self, answer: _Answer, error: AccordError, done: _QueryDone
    ) -> None:
        """Counts and records the end of a call nobody can be told about
        (``write_audit`` finishes a write even if this task is cancelled again)."""
        done(error, answer.trailer)
        if (closing := answer.closing(error)) is not None:
            with contextlib.suppress(AccordError):  # nobody is left to tell
                await self._record(closing)

    async def _send(
        self,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
        answer: _Answer,
        message: broker_pb2.QueryResponse,
        done: _QueryDone,
        ticket: Ticket,
        encode: Callable[[broker_pb2.QueryResponse], list[tuple[Message, int]]],
    ) -> None:
        """Writes one message of the answer, recording first what must be
        durable before it leaves: the access before the first message, the
        completion before the trailer."""
        payload = message.WhichOneof("payload")
        # Each flag is set before its write is awaited: a cancel that
        # interrupts the wait does not stop the write, so the record that
        # closes the query must take it as written.
        if not answer.started:
            answer.started = True
            await self._record(answer.record.access())
        if payload == "trailer":
            answer.trailer, answer.ended = message.trailer, True
            await self._record(answer.record.completion(message.trailer, None, answer.rows))
            done(None, message.trailer)  # a caller that has its answer finds it counted
        elif payload == "header":
            answer.schema = ipc.schema_from_bytes(message.header.arrow_schema)
        elif payload == "arrow_batch":
            # Counted as it is handed over: a cancel may cut the write short
            # after the client got it, so the record never counts fewer rows
            # than left.
            answer.rows += ipc.batch_from_bytes(message.arrow_batch, answer.schema).num_rows
        for wire, size in encode(message):
            await write_bounded(
                context, wire, ticket, self.pipeline.limits.slow_reader_s, answer.rows, size
            )

    def _admit(self, principal: Principal) -> Ticket:
        """Before any work: a partner over its quota costs the broker nothing more."""
        quota = self.pipeline.policies.quota_for(principal)
        return self.admission.admit(principal.partner.name, quota)

    def _open(
        self,
        event: str,
        query_id: str,
        principal: Principal,
        request: broker_pb2.QueryRequest | Undecodable,
        started: float,
    ) -> QueryRecord:
        decoded = request if isinstance(request, broker_pb2.QueryRequest) else None
        max_sql = self.pipeline.limits.max_sql_bytes
        return QueryRecord.open(event, query_id, principal, decoded, started, max_sql)

    async def Explain(
        self,
        request: broker_pb2.QueryRequest | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> broker_pb2.ExplainResponse:
        """Audited like a query (it shows the policy applied, and contacts the
        sources), with ``event: explain``; no record, no plan."""
        started = time.monotonic()
        with bind_query_id(new_query_id()) as query_id:
            context.set_trailing_metadata(((QUERY_ID_METADATA, query_id),))
            principal = await self._principal(context, "Explain")
            return await self._audited(
                "explain", request, context, principal, started, query_id, self.pipeline.explain
            )

    async def result_schema(
        self,
        request: broker_pb2.QueryRequest | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
        principal: Principal,
        started: float,
        query_id: str,
        interface: str = "",
    ) -> pa.Schema:
        """The schema of a query's answer without running it (``QueryPipeline.result_schema``),
        audited like an explain with ``event: schema``; refused as Query refuses it."""
        return await self._audited(
            "schema",
            request,
            context,
            principal,
            started,
            query_id,
            self.pipeline.result_schema,
            interface,
        )

    async def _audited(
        self,
        event: str,
        request: broker_pb2.QueryRequest | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
        principal: Principal,
        started: float,
        query_id: str,
        work: Callable[[Principal, broker_pb2.QueryRequest, QueryRecord], Awaitable[_T]],
        interface: str = "",
    ) -> _T:
        """``work`` on the admitted request under the partner's quota, with one
        record of it (or of its refusal) written before its answer leaves."""
        record = self._open(event, query_id, principal, request, started)
        record.interface = interface
        error: Exception | None = None
        try:
            with self._admit(principal):  # it plans and may contact sources: same quota
                admitted = admit_request(request, principal, self.pipeline.limits.max_sql_bytes)
                record.admitted(admitted)
                result = await work(principal, admitted, record)
        except Exception as exc:
            error = exc
        try:
            await self._record(record.as_dict(None, error))
        except AuditWriteError as audit_error:
            error = audit_error
        if error is not None:
            await _abort(context, error)
            raise error
        return result

    async def GetOffenderHistory(
        self,
        request: broker_pb2.HistoryRequest | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> broker_pb2.HistoryResponse:
        """Audited as one ``history`` record listing its parts
        (``broker.history.audit``), written before the answer leaves: no
        record, no answer. A refusal or failure is recorded the same way."""
        started = time.monotonic()
        with bind_query_id(new_query_id()) as history_id:
            principal = await self._principal(context, "GetOffenderHistory")
            decoded = request if isinstance(request, broker_pb2.HistoryRequest) else None
            history: History | None = None
            response: broker_pb2.HistoryResponse | None = None
            error: Exception | None = None

            async def record() -> None:
                await self._record(
                    history_record(
                        history_id, principal, decoded, history, response, error, started
                    )
                )

            try:
                with self._admit(principal):  # one history costs one query's admission
                    check_call(request, principal)
                    assert decoded is not None  # checked: it decoded
                    query = admit_history(
                        decoded.fps_number,
                        decoded.surname,
                        decoded.given_names,
                        decoded.birth_date,
                        decoded.birth_place,
                        decoded.purpose,
                        decoded.case_ref,
                        decoded.timeout_ms,
                    )
                    limits = self.pipeline.limits
                    timeout = min(
                        query.timeout_ms / 1000 or limits.default_timeout_s, limits.max_timeout_s
                    )
                    history = History(
                        self.pipeline, self.linkage, principal, query, started + timeout
                    )
                    response = await history.assemble()
                    response.history_id = history_id
                    response.elapsed_ms = (time.monotonic() - started) * 1000
            except asyncio.CancelledError:
                error = ClientCancelled("the history was cancelled")
                with contextlib.suppress(AccordError):  # nobody is left to tell
                    await record()
                raise
            except Exception as exc:
                error, response = exc, None
            try:
                await record()
            except AuditWriteError as audit_error:
                error, response = audit_error, None
            if error is not None or response is None:
                failure = error or AuditWriteError("the history has no answer")
                await _abort(context, failure)
                raise failure
            return response

    async def GetCatalog(
        self,
        request: broker_pb2.CatalogRequest | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> broker_pb2.CatalogResponse:
        with bind_query_id(new_query_id()) as query_id:
            context.set_trailing_metadata(((QUERY_ID_METADATA, query_id),))
            principal = await self._principal(context, "GetCatalog")
            return await self.audited_catalog(request, context, principal)

    async def audited_catalog(
        self,
        request: Message | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
        principal: Principal,
        extra: dict[str, Any] | None = None,
    ) -> broker_pb2.CatalogResponse:
        """What this caller may see, after one ``catalog`` record (with
        ``extra``, e.g. the Flight SQL command asked); or the call refused."""
        partner = principal.partner
        refusal: AccordError | None = None
        try:
            check_call(request, principal)
        except AccordError as exc:
            refusal = exc
        status, message = grpc_status(refusal) if refusal else (grpc.StatusCode.OK, "")
        cut: dict[str, int] = {}
        try:
            await self._record(
                {
                    "event": "catalog",
                    **(extra or {}),
                    "partner": partner.name,
                    "organization": partner.organization,
                    "role": partner.role,
                    "certificate_sha256": principal.fingerprint,
                    "end_user": bounded(principal.end_user, MAX_END_USER, cut, "end_user"),
                    "outcome": status.name,
                    **({"error": message} if refusal else {}),
                    **({"truncated": cut} if cut else {}),
                }
            )
        except AuditWriteError as exc:
            await _abort(context, exc)
            raise
        if refusal is not None:
            await _abort(context, refusal)
            raise refusal
        return self.pipeline.catalog(principal)

    async def refuse(
        self,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
        principal: Principal,
        method: str,
        error: Exception,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Ends a call the caller may not make, after its ``refused`` record;
        always raises."""
        status, message = grpc_status(error)
        cut: dict[str, int] = {}
        partner = principal.partner
        try:
            await self._record(
                {
                    "event": "refused",
                    "method": method,
                    **(extra or {}),
                    "partner": partner.name,
                    "organization": partner.organization,
                    "role": partner.role,
                    "certificate_sha256": principal.fingerprint,
                    "end_user": bounded(principal.end_user, MAX_END_USER, cut, "end_user"),
                    "outcome": status.name,
                    "error": bounded(message, MAX_PUBLIC_MESSAGE, cut, "error"),
                    **({"truncated": cut} if cut else {}),
                }
            )
        except AuditWriteError as audit_error:
            error = audit_error
        await _abort(context, error)
        raise error


@dataclasses.dataclass
class _Answer:
    """How far one query's answer got: whether its access record and its
    completion record are written, the rows handed to the client, its trailer."""

    record: QueryRecord
    started: bool = False
    ended: bool = False
    rows: int = 0
    schema: pa.Schema | None = None
    trailer: broker_pb2.QueryTrailer | None = None

    def closing(self, error: BaseException) -> dict[str, Any] | None:
        """The record that closes a query ending with ``error``: its
        ``query_end`` once the access is recorded, else its one record; None
        once its completion is written."""
        if self.ended:
            return None
        self.ended = True
        if self.started:
            return self.record.completion(self.trailer, error, self.rows)
        return self.record.as_dict(self.trailer, error)


class _QueryDone:
    """Counts one query in the metrics, once, however it ends."""

    def __init__(
        self, metrics: BrokerMetrics | None, role: str, started: float, record: QueryRecord
    ) -> None:
        self.metrics, self.role, self.started, self.record = metrics, role, started, record
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
            self.record.groups_suppressed,  # the trailer does not say (broker.policy.disclosure)
        )
        if self.record.privacy is not None:
            partner = self.record.principal.partner.name
            self.metrics.privacy_spent_by(self.role, partner, self.record.privacy)
        if error is None and trailer is not None and trailer.partial:
            missing = [s for s in trailer.sources if s.state != broker_pb2.SOURCE_STATE_OK]
            for status in missing:
                self.metrics.partial_answers.labels(status.source).inc()
            log.warning(
                "partial answer for role %s, without %s",
                self.role,
                ", ".join(
                    f"{s.source} ({broker_pb2.SourceState.Name(s.state)}: {s.error})"
                    for s in missing
                ),
            )


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:  # type: ignore[type-arg]
    """Ends the call with ``exc``'s status: its public message (bounded, with
    the query id) and the structured details of :func:`accord.errors.rich_status`."""
    status, message = grpc_status(exc)
    message = bounded(message, MAX_PUBLIC_MESSAGE, {}, "error")  # never a megabyte back
    if status == grpc.StatusCode.INTERNAL:
        log.error("internal error", exc_info=exc)
    else:
        log.info("query refused: %s: %s", status.name, message)
    retry_after_s = exc.retry_after_s if isinstance(exc, OverQuota) else 0.0
    rich = rich_status(exc, current_query_id(), message, retry_after_s)
    # (grpc-stubs lacks the aio method; grpc.aio has it since 1.38)
    await context.abort_with_status(rich)  # type: ignore[attr-defined]


def add_broker_service(service: BrokerService, server: grpc.aio.Server) -> None:
    """What ``broker_pb2_grpc.add_BrokerServicer_to_server`` does, with
    :func:`lenient` request deserializers (see the module docstring)."""
    pb, m = broker_pb2, service.metrics
    handlers = {
        "Query": grpc.unary_stream_rpc_method_handler(
            service.Query,
            request_deserializer=lenient(pb.QueryRequest, m),
            response_serializer=pb.QueryResponse.SerializeToString,
        ),
        "Explain": grpc.unary_unary_rpc_method_handler(
            service.Explain,
            request_deserializer=lenient(pb.QueryRequest, m),
            response_serializer=pb.ExplainResponse.SerializeToString,
        ),
        "GetOffenderHistory": grpc.unary_unary_rpc_method_handler(
            service.GetOffenderHistory,
            request_deserializer=lenient(pb.HistoryRequest, m),
            response_serializer=pb.HistoryResponse.SerializeToString,
        ),
        "GetCatalog": grpc.unary_unary_rpc_method_handler(
            service.GetCatalog,
            request_deserializer=lenient(pb.CatalogRequest, m),
            response_serializer=pb.CatalogResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))


@dataclasses.dataclass
class RunningBroker:
    """A started broker server: its port, readiness and the service it runs
    (which ``broker.flight`` serves too, so both share quotas and audit)."""

    server: grpc.aio.Server
    port: int
    readiness: Readiness
    service: BrokerService


async def create_server(
    pipeline: QueryPipeline,
    credentials: grpc.ServerCredentials,
    *,
    address: str = "127.0.0.1:0",
    metrics: BrokerMetrics | None = None,
    audit: AuditLog | None = None,
    readiness_interval_s: float = 2.0,
    revocations: RevocationList | None = None,
    linkage: LinkageModel | None = None,
) -> tuple[grpc.aio.Server, int, Readiness]:
    """:func:`start_broker`, as (server, bound port, readiness)."""
    running = await start_broker(
        pipeline,
        credentials,
        address=address,
        metrics=metrics,
        audit=audit,
        readiness_interval_s=readiness_interval_s,
        revocations=revocations,
        linkage=linkage,
    )
    return running.server, running.port, running.readiness


async def start_broker(
    pipeline: QueryPipeline,
    credentials: grpc.ServerCredentials,
    *,
    address: str = "127.0.0.1:0",
    metrics: BrokerMetrics | None = None,
    audit: AuditLog | None = None,
    readiness_interval_s: float = 2.0,
    revocations: RevocationList | None = None,
    linkage: LinkageModel | None = None,
) -> RunningBroker:
    """Builds and starts the broker's server; returns it with its bound port,
    its service and its readiness, whose ``health`` servicer also serves
    per-source health.

    Health (overall and for the Broker service) follows the readiness probe,
    which runs until ``readiness.stop()`` or the end of the event loop.
    """
    server = grpc.aio.server(options=tls.SERVER_OPTIONS)
    health_servicer = health_aio.HealthServicer()
    readiness = Readiness(health_servicer, ("", SERVICE_NAME), audit, readiness_interval_s)
    service = BrokerService(pipeline, metrics, audit, readiness, revocations, linkage)
    add_broker_service(service, server)
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
    return RunningBroker(server, port, readiness, service)
