"""A small synchronous client for the broker, used by the CLI, demo and tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import pyarrow as pa

from accord import ipc, tls
from accord.metadata import END_USER_METADATA
from accord.v1 import broker_pb2, broker_pb2_grpc

if TYPE_CHECKING:
    from pathlib import Path


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
        for message in self._stub.Query(request, timeout=timeout + 5, metadata=self._metadata):
            kind = message.WhichOneof("payload")
            if kind == "header":
                query_id = message.header.query_id
                schema = ipc.schema_from_bytes(message.header.arrow_schema)
            elif kind == "arrow_batch":
                batches.append(ipc.batch_from_bytes(message.arrow_batch, schema))
            elif kind == "trailer":
                trailer = message.trailer
        if schema is None or trailer is None:
            raise RuntimeError("the broker's answer was cut short (no header or trailer)")
        return QueryResult(query_id, pa.Table.from_batches(batches, schema=schema), trailer)

    def explain(
        self, sql: str, *, purpose: str = "", case_ref: str = "", timeout: float = 30.0
    ) -> broker_pb2.ExplainResponse:
        request = broker_pb2.QueryRequest(
            sql=sql, purpose=purpose or self.purpose, case_ref=case_ref or self.case_ref
        )
        response: broker_pb2.ExplainResponse = self._stub.Explain(
            request, timeout=timeout, metadata=self._metadata
        )
        return response

    def catalog(self, timeout: float = 10.0) -> broker_pb2.CatalogResponse:
        response: broker_pb2.CatalogResponse = self._stub.GetCatalog(
            broker_pb2.CatalogRequest(), timeout=timeout, metadata=self._metadata
        )
        return response
