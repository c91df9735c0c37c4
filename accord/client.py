"""A small synchronous client for the broker, used by the CLI, demo and tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import pyarrow as pa
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from accord import ipc, tls
from accord.metadata import END_USER_METADATA, QUERY_ID_METADATA
from accord.v1 import broker_pb2, broker_pb2_grpc

if TYPE_CHECKING:
    from pathlib import Path

    from google.protobuf import any_pb2


class RetryLater(grpc.RpcError):
    """The broker refused for now (RESOURCE_EXHAUSTED with a
    ``google.rpc.RetryInfo``): the same call may succeed after
    ``retry_after_s`` seconds. Still a ``grpc.RpcError``, with its code and
    details, for callers that handle those."""

    def __init__(self, error: grpc.RpcError, retry_after_s: float) -> None:
        self.error, self.retry_after_s = error, retry_after_s
        super().__init__(f"{self.details()} (retry after {retry_after_s:.3f} s)")

    def code(self) -> grpc.StatusCode:
        code: grpc.StatusCode = self.error.code()
        return code

    def details(self) -> str:
        return self.error.details() or ""


def retry_after(error: grpc.RpcError) -> float | None:
    """The delay a ``google.rpc.RetryInfo`` detail of ``error`` asks for, if any."""
    if not isinstance(error, grpc.Call):
        return None
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            delay: float = info.retry_delay.ToMilliseconds() / 1000
            return delay
    return None


def _details(error: grpc.RpcError) -> list[any_pb2.Any]:
    if not isinstance(error, grpc.Call):
        return []
    status = rpc_status.from_call(error)
    return list(status.details) if status is not None else []


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ``google.rpc.ErrorInfo`` the broker put in ``error``'s details:
    None for an error that did not come from the broker (no connection, a
    handshake refused)."""
    for detail in _details(error):
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def bad_fields(error: grpc.RpcError) -> list[str]:
    """The request fields a ``google.rpc.BadRequest`` detail of ``error`` names."""
    fields: list[str] = []
    for detail in _details(error):
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            request = error_details_pb2.BadRequest()
            detail.Unpack(request)
            fields += [v.field for v in request.field_violations]
    return fields


def query_id_of(error: grpc.RpcError) -> str:
    """The query id of a failed call: from its trailing or initial metadata."""
    if not isinstance(error, grpc.Call):
        return ""
    for metadata in (error.trailing_metadata(), error.initial_metadata()):
        for key, value in metadata or ():
            if key == QUERY_ID_METADATA:
                return str(value)
    return ""


def retry_later(error: grpc.RpcError) -> RetryLater | None:
    """``error`` as :class:`RetryLater` when the broker said when to retry."""
    delay = retry_after(error)
    return None if delay is None else RetryLater(error, delay)


@dataclass
class QueryResult:
    query_id: str
    table: pa.Table
    trailer: broker_pb2.QueryTrailer


class BrokerClient:
    def __init__(
        self,
        address: str,
        ca: Path,
        cert: Path,
        key: Path,
        end_user: str = "",
        purpose: str = "",
        case_ref: str = "",
    ) -> None:
        """``purpose`` and ``case_ref`` are this session's defaults for every call."""
        self.purpose = purpose
        self.case_ref = case_ref
        self._channel = grpc.secure_channel(
            address, tls.channel_credentials(ca, cert, key), options=tls.CHANNEL_OPTIONS
        )
        self._stub = broker_pb2_grpc.BrokerStub(self._channel)
        self._metadata = ((END_USER_METADATA, end_user),) if end_user else ()

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def query(
        self,
        sql: str,
        *,
        purpose: str = "",
        case_ref: str = "",
        allow_partial: bool = False,
        timeout: float = 60.0,
    ) -> QueryResult:
        request = broker_pb2.QueryRequest(
            sql=sql,
            purpose=purpose or self.purpose,
            case_ref=case_ref or self.case_ref,
            allow_partial=allow_partial,
            timeout_ms=int(timeout * 1000),
        )
        query_id = ""
        schema: pa.Schema | None = None
        batches: list[pa.RecordBatch] = []
        trailer: broker_pb2.QueryTrailer | None = None
        try:
            for message in self._stub.Query(request, timeout=timeout + 5, metadata=self._metadata):
                kind = message.WhichOneof("payload")
                if kind == "header":
                    query_id = message.header.query_id
                    schema = ipc.schema_from_bytes(message.header.arrow_schema)
                elif kind == "arrow_batch":
                    batches.append(ipc.batch_from_bytes(message.arrow_batch, schema))
                elif kind == "trailer":
                    trailer = message.trailer
        except grpc.RpcError as exc:
            later = retry_later(exc)
            if later is None:
                raise
            raise later from exc
        if schema is None or trailer is None:
            raise RuntimeError("the broker's answer was cut short (no header or trailer)")
        return QueryResult(query_id, pa.Table.from_batches(batches, schema=schema), trailer)

    def explain(
        self, sql: str, *, purpose: str = "", case_ref: str = "", timeout: float = 30.0
    ) -> broker_pb2.ExplainResponse:
        request = broker_pb2.QueryRequest(
            sql=sql, purpose=purpose or self.purpose, case_ref=case_ref or self.case_ref
        )
        try:
            response: broker_pb2.ExplainResponse = self._stub.Explain(
                request, timeout=timeout, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            later = retry_later(exc)
            if later is None:
                raise
            raise later from exc
        return response

    def history(
        self,
        *,
        fps_number: str = "",
        surname: str = "",
        given_names: str = "",
        birth_date: str = "",
        birth_place: str = "",
        purpose: str = "",
        case_ref: str = "",
        timeout: float = 30.0,
    ) -> broker_pb2.HistoryResponse:
        """One person's history, by FPS number or by name and birth date (YYYY-MM-DD)."""
        request = broker_pb2.HistoryRequest(
            fps_number=fps_number,
            surname=surname,
            given_names=given_names,
            birth_date=birth_date,
            birth_place=birth_place,
            purpose=purpose or self.purpose,
            case_ref=case_ref or self.case_ref,
            timeout_ms=int(timeout * 1000),
        )
        try:
            response: broker_pb2.HistoryResponse = self._stub.GetOffenderHistory(
                request, timeout=timeout + 5, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            later = retry_later(exc)
            if later is None:
                raise
            raise later from exc
        return response

    def catalog(self, timeout: float = 10.0) -> broker_pb2.CatalogResponse:
        response: broker_pb2.CatalogResponse = self._stub.GetCatalog(
            broker_pb2.CatalogRequest(), timeout=timeout, metadata=self._metadata
        )
        return response
