"""The Flight SQL service: thin handlers over the Broker service's own paths.

Each call binds a query id, maps the certificate to a partner
(``BrokerService.authenticate``), decodes the Flight SQL command from its
``google.protobuf.Any`` and hands it to what ``Query``, ``Explain`` and
``GetCatalog`` use:

- GetFlightInfo / GetSchema of a statement (or of a prepared statement
  with its parameters bound): ``BrokerService.result_schema``, which
  admits, validates and rewrites the query as ``Query`` does (every refusal
  the same status and message) and audits an ``event: schema`` record; then
  a single-use ticket (``handles``) for this certificate.
- DoGet of that ticket: ``BrokerService.run_query``, the ``Query`` path
  itself (quota, limits, slow readers, the ``query`` records before the
  first batch and after the last), its answer written as FlightData.
- Metadata commands: ``BrokerService.audited_catalog`` (a ``catalog``
  record naming the command), answered by ``metadata``. Their ticket is the
  command itself: the answer depends only on who redeems it.
- CreatePreparedStatement: the result schema as above (parameters bound as
  NULL), and a handle; DoPut binds one row of parameters (``params``).

A command the broker does not serve is UNIMPLEMENTED, a malformed one
INVALID_ARGUMENT, a write PERMISSION_DENIED-free INVALID_ARGUMENT (the
broker is read-only); every refusal is audited (``BrokerService.refuse``).
Purpose, case reference and end user come from the call headers
``x-accord-purpose``, ``x-accord-case-ref`` and ``x-accord-end-user``; the
query's deadline from the call's.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

import grpc
import pyarrow as pa
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from accord import ipc, tls
from accord.errors import AccordError, ConfigError, InvalidQuery, Unimplemented
from accord.flight import Flight_pb2 as fl
from accord.flight import FlightSql_pb2 as sql
from accord.logs import bind_query_id, new_query_id
from accord.metadata import CASE_REF_METADATA, PURPOSE_METADATA, QUERY_ID_METADATA
from accord.v1 import broker_pb2
from broker.flight import metadata, params
from broker.flight.arrow_data import batch_messages, read_table, schema_message, table_messages
from broker.flight.handles import Handles, PreparedStatement
from broker.server import Undecodable, lenient
from broker.settings import load_flight_settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from google.protobuf.message import Message

    from broker.identity import Principal
    from broker.server import BrokerService
    from broker.settings import FlightSettings

log = logging.getLogger("accord.broker.flight")

SERVICE_NAME = fl.DESCRIPTOR.services_by_name["FlightService"].full_name
#: The audit records' ``interface`` of calls that came this way.
INTERFACE = "flight_sql"
#: Bounds of one DoPut (a prepared statement's parameters: one row).
MAX_PUT_MESSAGES = 64
MAX_PUT_BYTES = 1 << 20

CREATE_PREPARED_STATEMENT = "CreatePreparedStatement"
CLOSE_PREPARED_STATEMENT = "ClosePreparedStatement"
ACTIONS = {
    CREATE_PREPARED_STATEMENT: "Prepares a read-only query: its result and parameter schemas",
    CLOSE_PREPARED_STATEMENT: "Closes a prepared statement",
}

#: Every Flight SQL message a command or ticket may hold, by its full name.
_KNOWN: dict[str, type[Message]] = {
    m.DESCRIPTOR.full_name: m  # type: ignore[attr-defined]
    for m in (
        *metadata.SCHEMAS,
        sql.CommandStatementQuery,
        sql.CommandPreparedStatementQuery,
        sql.TicketStatementQuery,
        sql.CommandStatementUpdate,
        sql.CommandPreparedStatementUpdate,
        sql.ActionCreatePreparedStatementRequest,
        sql.ActionClosePreparedStatementRequest,
        sql.CommandGetXdbcTypeInfo,
    )
}
_WRITES = (sql.CommandStatementUpdate, sql.CommandPreparedStatementUpdate)
READ_ONLY = "the Accord broker is read-only: it answers queries (SELECT, WITH, set operations) only"


def unpack(data: bytes, what: str) -> Message:
    """The Flight SQL message in a packed ``google.protobuf.Any``: INVALID_ARGUMENT
    if it does not decode, UNIMPLEMENTED if the broker does not serve it."""
    packed = any_pb2.Any()
    try:
        packed.ParseFromString(data)
    except DecodeError as exc:
        raise InvalidQuery(f"the {what} is not a packed Flight SQL message", field=what) from exc
    name = packed.TypeName()
    kind = _KNOWN.get(name)
    if kind is None or kind is sql.CommandGetXdbcTypeInfo:
        # The caller's text, named back only when it is a plausible type name.
        shown = name if re.fullmatch(r"[A-Za-z0-9_.]{1,120}", name) else "this command"
        raise Unimplemented(
            f"{shown} is not served by Accord's Flight SQL endpoint; it serves SQL "
            "statements, prepared statements and the catalog metadata commands"
        )
    message = kind()
    if not packed.Unpack(message):
        raise InvalidQuery(f"the {what} is a malformed {name}", field=what)
    return message


def pack(message: Message) -> bytes:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed.SerializeToString()


def as_flight_data(message: broker_pb2.QueryResponse) -> list[tuple[Message, int]]:
    """One message of a Query's answer as FlightData: the header's schema, a
    batch's messages; the trailer stays in the audit record (Flight has no
    place for it, and a Flight SQL query never asks for a partial answer)."""
    payload = message.WhichOneof("payload")
    if payload == "header":
        return [(schema_message(message.header.arrow_schema), 0)]
    if payload == "arrow_batch":
        return [(data, len(data.data_body)) for data in batch_messages(message.arrow_batch)]
    return []


class FlightSqlService:
    def __init__(self, broker: BrokerService, settings: FlightSettings | None = None) -> None:
        self.broker = broker
        self.handles = Handles(settings or load_flight_settings())

    # --- helpers -----------------------------------------------------------

    async def _refuse(
        self,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
        principal: Principal,
        method: str,
        error: Exception,
    ) -> None:
        await self.broker.refuse(context, principal, method, error, {"interface": INTERFACE})

    def _request(
        self,
        text: str,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> broker_pb2.QueryRequest:
        """A QueryRequest from the SQL and the call's headers and deadline."""
        headers = dict(context.invocation_metadata() or ())
        remaining = context.time_remaining()
        timeout_ms = int(remaining * 1000) if remaining is not None and remaining > 0 else 0
        return broker_pb2.QueryRequest(
            sql=text,
            purpose=str(headers.get(PURPOSE_METADATA, "")),
            case_ref=str(headers.get(CASE_REF_METADATA, "")),
            timeout_ms=max(timeout_ms, 0),
        )

    def _statement_sql(self, command: Message, principal: Principal) -> str:
        """The SQL a statement or prepared statement command runs."""
        if isinstance(command, sql.CommandStatementQuery):
            return command.query
        if isinstance(command, sql.CommandPreparedStatementQuery):
            statement = self.handles.statement(command.prepared_statement_handle, principal)
            values = statement.parameters
            if values is None and statement.placeholders:
                raise InvalidQuery(
                    f"bind the statement's {statement.placeholders} parameters first (DoPut)",
                    field="parameters",
                )
            return params.bind(statement.sql, values or [])
        if isinstance(command, _WRITES):
            raise InvalidQuery(READ_ONLY)
        raise InvalidQuery(
            f"{command.DESCRIPTOR.name} is not a command for GetFlightInfo or GetSchema",
            field="command",
        )

    async def _described(
        self,
        request: fl.FlightDescriptor | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
        method: str,
        query_id: str,
    ) -> tuple[Principal, Message, broker_pb2.QueryRequest | None, pa.Schema]:
        """The caller, its command, the query it runs (None for metadata)
        and the schema of its answer: or the call refused, audited."""
        started = time.monotonic()
        context.set_trailing_metadata(((QUERY_ID_METADATA, query_id),))
        principal = await self.broker.authenticate(context, method)
        try:
            if isinstance(request, Undecodable):
                raise InvalidQuery(f"the request is not a valid {request.message_type}", field="")
            if request.type != fl.FlightDescriptor.CMD:
                raise InvalidQuery(
                    "Accord serves Flight SQL commands (FlightDescriptor type CMD), not paths",
                    field="flight_descriptor",
                )
            command = unpack(request.cmd, "command")
            if type(command) in metadata.SCHEMAS:
                return principal, command, None, metadata.schema_of(command)
            query = self._request(self._statement_sql(command, principal), context)
        except AccordError as exc:
            await self._refuse(context, principal, method, exc)
            raise
        schema = await self.broker.result_schema(
            query, context, principal, started, query_id, INTERFACE
        )
        return principal, command, query, schema

    # --- FlightService -----------------------------------------------------

    async def GetFlightInfo(
        self,
        request: fl.FlightDescriptor | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> fl.FlightInfo:
        with bind_query_id(new_query_id()) as query_id:
            principal, command, query, schema = await self._described(
                request, context, "GetFlightInfo", query_id
            )
            if query is None:
                ticket = pack(command)  # metadata: answered for whoever redeems it
            else:
                try:
                    handle = self.handles.ticket(principal, query)
                except AccordError as exc:
                    await self._refuse(context, principal, "GetFlightInfo", exc)
                    raise
                ticket = pack(sql.TicketStatementQuery(statement_handle=handle))
        assert isinstance(request, fl.FlightDescriptor)  # else refused
        return fl.FlightInfo(
            schema=ipc.schema_to_bytes(schema),
            flight_descriptor=request,
            endpoint=[fl.FlightEndpoint(ticket=fl.Ticket(ticket=ticket))],
            total_records=-1,
            total_bytes=-1,
            ordered=True,
        )

    async def GetSchema(
        self,
        request: fl.FlightDescriptor | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> fl.SchemaResult:
        with bind_query_id(new_query_id()) as query_id:
            _, _, _, schema = await self._described(request, context, "GetSchema", query_id)
        return fl.SchemaResult(schema=ipc.schema_to_bytes(schema))

    async def DoGet(
        self,
        request: fl.Ticket | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> None:
        started = time.monotonic()
        with bind_query_id(new_query_id()) as query_id:
            context.set_trailing_metadata(((QUERY_ID_METADATA, query_id),))
            principal = await self.broker.authenticate(context, "DoGet")
            try:
                if isinstance(request, Undecodable):
                    raise InvalidQuery(f"the request is not a valid {request.message_type}")
                command = unpack(request.ticket, "ticket")
                query = None
                if isinstance(command, sql.TicketStatementQuery):
                    query = self.handles.redeem(command.statement_handle, principal)
                elif type(command) not in metadata.SCHEMAS:
                    raise InvalidQuery("this is not a ticket GetFlightInfo issued", field="ticket")
            except AccordError as exc:
                await self._refuse(context, principal, "DoGet", exc)
                raise
            if query is not None:
                await self.broker.run_query(
                    query, context, principal, started, query_id, as_flight_data, INTERFACE
                )
                return
            extra = {"interface": INTERFACE, "command": command.DESCRIPTOR.name}
            catalog = await self.broker.audited_catalog(command, context, principal, extra)
            for data in table_messages(metadata.answer(command, catalog)):
                await context.write(data)

    async def DoPut(
        self,
        requests: AsyncIterator[fl.FlightData | Undecodable],
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> None:
        """Binds one row of parameters to a prepared statement."""
        with bind_query_id(new_query_id()) as query_id:
            context.set_trailing_metadata(((QUERY_ID_METADATA, query_id),))
            principal = await self.broker.authenticate(context, "DoPut")
            try:
                data = await _bounded_put(requests)
                command = unpack(data[0].flight_descriptor.cmd, "command")
                if isinstance(command, _WRITES):
                    raise InvalidQuery(READ_ONLY)
                if not isinstance(command, sql.CommandPreparedStatementQuery):
                    raise InvalidQuery(
                        "DoPut binds the parameters of a prepared statement "
                        "(CommandPreparedStatementQuery) only",
                        field="command",
                    )
                handle = command.prepared_statement_handle
                statement = self.handles.statement(handle, principal)
                values = params.row_values(read_table(data))
                params.bind(statement.sql, values)  # the right number, each bindable
                statement.parameters = values
            except AccordError as exc:
                await self._refuse(context, principal, "DoPut", exc)
                raise
            result = sql.DoPutPreparedStatementResult(prepared_statement_handle=handle)
            await context.write(fl.PutResult(app_metadata=result.SerializeToString()))

    async def DoAction(
        self,
        request: fl.Action | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> None:
        started = time.monotonic()
        with bind_query_id(new_query_id()) as query_id:
            context.set_trailing_metadata(((QUERY_ID_METADATA, query_id),))
            principal = await self.broker.authenticate(context, "DoAction")
            try:
                if isinstance(request, Undecodable):
                    raise InvalidQuery(f"the request is not a valid {request.message_type}")
                if request.type not in ACTIONS:
                    raise Unimplemented(
                        f"action {request.type[:64]!r} is not served by Accord's Flight SQL "
                        f"endpoint; it serves {', '.join(ACTIONS)}"
                    )
                body = unpack(request.body, "action")
                if request.type == CLOSE_PREPARED_STATEMENT:
                    if not isinstance(body, sql.ActionClosePreparedStatementRequest):
                        raise InvalidQuery("ClosePreparedStatement takes its request message")
                    self.handles.close(body.prepared_statement_handle, principal)
                    return
                if not isinstance(body, sql.ActionCreatePreparedStatementRequest):
                    raise InvalidQuery("CreatePreparedStatement takes its request message")
                statement = PreparedStatement(body.query, params.placeholders(body.query))
                # The schema of its answer, refused now as the query would be.
                query = self._request(
                    params.bind(body.query, [None] * statement.placeholders), context
                )
            except AccordError as exc:
                await self._refuse(context, principal, "DoAction", exc)
                raise
            schema = await self.broker.result_schema(
                query, context, principal, started, query_id, INTERFACE
            )
            try:
                handle = self.handles.prepare(principal, statement)
            except AccordError as exc:
                await self._refuse(context, principal, "DoAction", exc)
                raise
            result = sql.ActionCreatePreparedStatementResult(
                prepared_statement_handle=handle,
                dataset_schema=ipc.schema_to_bytes(schema),
                parameter_schema=ipc.schema_to_bytes(parameter_schema(statement.placeholders)),
            )
            await context.write(fl.Result(body=pack(result)))

    async def ListActions(
        self,
        request: fl.Empty | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> None:
        await self.broker.authenticate(context, "ListActions")
        for name, description in ACTIONS.items():
            await context.write(fl.ActionType(type=name, description=description))

    async def ListFlights(
        self,
        request: fl.Criteria | Undecodable,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> None:
        """None: every answer is made by a command (GetFlightInfo)."""
        await self.broker.authenticate(context, "ListFlights")

    async def Handshake(
        self,
        requests: AsyncIterator[fl.HandshakeRequest | Undecodable],
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> None:
        """Answers each message empty: the caller is its certificate, no token."""
        await self.broker.authenticate(context, "Handshake")
        async for _ in requests:
            await context.write(fl.HandshakeResponse())

    async def DoExchange(
        self,
        requests: AsyncIterator[fl.FlightData | Undecodable],
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> None:
        with bind_query_id(new_query_id()):
            principal = await self.broker.authenticate(context, "DoExchange")
            await self._refuse(
                context,
                principal,
                "DoExchange",
                Unimplemented("DoExchange is not served by Accord's Flight SQL endpoint"),
            )


def parameter_schema(count: int) -> pa.Schema:
    """A statement's parameters: any type each (bound as literals, then typed by the query)."""
    return pa.schema([pa.field(f"${i + 1}", pa.null()) for i in range(count)])


async def _bounded_put(requests: AsyncIterator[fl.FlightData | Undecodable]) -> list[fl.FlightData]:
    data: list[fl.FlightData] = []
    size = 0
    async for item in requests:
        if isinstance(item, Undecodable):
            raise InvalidQuery(f"a message is not a valid {item.message_type}", field="")
        size += item.ByteSize()
        data.append(item)
        if len(data) > MAX_PUT_MESSAGES or size > MAX_PUT_BYTES:
            raise InvalidQuery(
                f"bind one row of parameters (at most {MAX_PUT_BYTES} bytes)", field="parameters"
            )
    if not data or not data[0].HasField("flight_descriptor"):
        raise InvalidQuery("DoPut starts with the command's FlightDescriptor", field="command")
    return data


def add_flight_service(service: FlightSqlService, server: grpc.aio.Server) -> None:
    """The FlightService methods, with lenient request deserializers (see broker.server)."""
    m = service.broker.metrics
    stream = grpc.unary_stream_rpc_method_handler
    both = grpc.stream_stream_rpc_method_handler
    one = grpc.unary_unary_rpc_method_handler

    def handler(
        kind: Any, method: Any, request: Any, response: Any
    ) -> grpc.RpcMethodHandler[Any, Any]:
        return kind(  # type: ignore[no-any-return]
            method,
            request_deserializer=lenient(request, m),
            response_serializer=response.SerializeToString,
        )

    handlers = {
        "Handshake": handler(both, service.Handshake, fl.HandshakeRequest, fl.HandshakeResponse),
        "ListFlights": handler(stream, service.ListFlights, fl.Criteria, fl.FlightInfo),
        "GetFlightInfo": handler(one, service.GetFlightInfo, fl.FlightDescriptor, fl.FlightInfo),
        "GetSchema": handler(one, service.GetSchema, fl.FlightDescriptor, fl.SchemaResult),
        "DoGet": handler(stream, service.DoGet, fl.Ticket, fl.FlightData),
        "DoPut": handler(both, service.DoPut, fl.FlightData, fl.PutResult),
        "DoExchange": handler(both, service.DoExchange, fl.FlightData, fl.FlightData),
        "DoAction": handler(stream, service.DoAction, fl.Action, fl.Result),
        "ListActions": handler(stream, service.ListActions, fl.Empty, fl.ActionType),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))


async def create_flight_server(
    broker: BrokerService,
    credentials: grpc.ServerCredentials,
    *,
    address: str = "127.0.0.1:0",
    settings: FlightSettings | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Builds and starts the Flight SQL server over ``broker``'s service;
    returns it with its bound port."""
    server = grpc.aio.server(options=tls.SERVER_OPTIONS)
    add_flight_service(FlightSqlService(broker, settings), server)
    port = server.add_secure_port(address, credentials)  # mTLS, as the broker's (accord.tls)
    if port == 0:
        raise ConfigError(f"the Flight SQL endpoint cannot listen on {address}")
    await server.start()
    log.info("Flight SQL endpoint on port %d", port)
    return server, port
