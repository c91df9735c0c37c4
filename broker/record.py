"""The audit record of one query or explain, typed, and writing records durably.

The servicer opens a :class:`QueryRecord` when a call's caller is known; the
pipeline fills in what it planned (:meth:`QueryRecord.planned`) and what each
source did (:meth:`QueryRecord.fetched`) as soon as each is known, so a query
that fails half-way is still recorded with everything it touched; the
servicer closes it with the trailer or the error and writes it
(:func:`write_audit`) before the answer completes: no record, no answer.

A record holds who, why, what and how it went; never result data.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from accord.errors import AuditWriteError, grpc_status, scan_outcome
from broker.outcome import SourceTotals, totals_by_source

if TYPE_CHECKING:
    from collections.abc import Mapping

    from accord.v1 import broker_pb2
    from broker.audit.log import AuditLog
    from broker.fanout import ScanResult
    from broker.identity import Principal
    from broker.metrics import BrokerMetrics
    from broker.prepare import PreparedQuery
    from broker.readiness import Readiness


@dataclass(frozen=True)
class Plan:
    """What the audit keeps of a planned query."""

    rewritten_sql_sha256: str
    tables: dict[str, list[str]]  # table -> columns read
    masks: list[str]
    row_filters: list[str]


@dataclass
class QueryRecord:
    event: str  # "query" or "explain"
    query_id: str
    principal: Principal
    purpose: str
    case_ref: str
    sql: str
    started: float  # monotonic, when the call arrived
    plan: Plan | None = None  # None: refused before it was planned
    sources: dict[str, SourceTotals] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        event: str,
        query_id: str,
        principal: Principal,
        request: broker_pb2.QueryRequest,
        started: float,
    ) -> QueryRecord:
        """A record for a call that arrived at ``started`` (monotonic)."""
        return cls(
            event, query_id, principal, request.purpose, request.case_ref, request.sql, started
        )

    def planned(self, prepared: PreparedQuery) -> None:
        touched: dict[str, set[str]] = {}
        for ref in prepared.plan.references:
            touched.setdefault(ref.table, set()).update(ref.columns)
        self.plan = Plan(
            rewritten_sql_sha256=hashlib.sha256(prepared.rewritten_sql.encode()).hexdigest(),
            tables={table: sorted(columns) for table, columns in touched.items()},
            masks=list(prepared.masks),
            row_filters=list(prepared.row_filters),
        )

    def fetched(self, results: list[ScanResult]) -> None:
        self.sources = totals_by_source(results)

    def as_dict(
        self, trailer: broker_pb2.QueryTrailer | None, error: BaseException | None
    ) -> dict[str, Any]:
        """The record as written, closed by the answer's trailer (None when the
        query failed before it) or by the error it failed with."""
        partner = self.principal.partner
        status, message = grpc_status(error) if error is not None else (grpc.StatusCode.OK, "")
        visible = {s.source: s.rows for s in trailer.sources} if trailer is not None else {}
        planned: dict[str, Any] = {}
        if self.plan is not None:
            planned = {
                "rewritten_sql_sha256": self.plan.rewritten_sql_sha256,
                "tables": self.plan.tables,
                "masks": self.plan.masks,
                "row_filters": self.plan.row_filters,
            }
        return {
            "event": self.event,
            "query_id": self.query_id,
            **planned,
            "partner": partner.name,
            "organization": partner.organization,
            "role": partner.role,
            "certificate_sha256": self.principal.fingerprint,
            "certificate_serial": str(self.principal.serial),
            "end_user": self.principal.end_user,
            "purpose": self.purpose,
            "case_ref": self.case_ref,
            "sql": self.sql,
            # Each source contacted: how its scans ended, what it sent (hidden
            # rows included: the operators' business, never the caller's), and
            # how many of its rows the caller's views held.
            "sources": [
                {
                    "source": code,
                    "scans": t.scans,
                    "outcome": scan_outcome(t.error),
                    "error": t.error.reason if t.error else "",
                    "rows": t.rows,
                    "bytes": t.bytes,
                    "elapsed_ms": round(t.elapsed_ms, 1),
                    "visible_rows": visible.get(code, 0),
                    # stored values sent as NULL, by "table.column": counts only
                    "bad_values": dict(sorted(t.bad_values.items())),
                }
                for code, t in sorted(self.sources.items())
            ],
            "rows_returned": trailer.rows if trailer is not None else 0,
            "groups_suppressed": trailer.suppressed_groups if trailer is not None else 0,
            "partial": trailer.partial if trailer is not None else False,
            "duration_ms": round((time.monotonic() - self.started) * 1000, 1),
            "outcome": status.name,
            "error": message,
        }


async def write_audit(
    record: Mapping[str, Any],
    audit: AuditLog | None,
    metrics: BrokerMetrics | None = None,
    readiness: Readiness | None = None,
) -> None:
    """Writes one audit record durably, counting it; or raises AuditWriteError,
    counting the failure and making the broker probe its trail at once."""
    if audit is None:
        return
    try:
        await asyncio.to_thread(audit.append, dict(record))
    except AuditWriteError:
        if metrics is not None:
            metrics.audit_write_failures.inc()
        if readiness is not None:
            readiness.audit_failed()
        raise
    if metrics is not None:
        metrics.audit_records.inc()
