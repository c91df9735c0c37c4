"""The audit record of one query or explain, typed, and writing records durably.

The servicer opens a :class:`QueryRecord` when a call's caller is known; the
pipeline fills in what it planned (:meth:`QueryRecord.planned`) and what each
source did (:meth:`QueryRecord.fetched`) as soon as each is known, so a query
that fails half-way is still recorded with everything it touched.

A query is written (:func:`write_audit`) as one or two chained records:

- refused, failed or cancelled before anything of its answer left: one
  ``query`` record (:meth:`QueryRecord.as_dict`) with how it ended;
- answered: a ``query`` record with outcome ``STARTED``
  (:meth:`QueryRecord.access`), durable before the answer's first message
  leaves (a query whose access cannot be recorded is not answered), then a
  ``query_end`` record (:meth:`QueryRecord.completion`) with the rows that
  left, what each source did and how it ended: ``OK`` before the trailer
  leaves, or the error, or ``CANCELLED`` with ``cancelled_after_rows`` when
  the client went away mid-answer.

A record holds who, why, what and how it went; never result data. Every
text a caller sent is kept bounded (:func:`bounded`): a field longer than the
broker admits (it was refused) is kept as a short prefix ending in
``[truncated]``, and ``truncated`` maps the field to its original length in
UTF-8 bytes, so a refused megabyte costs the trail a few hundred bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from accord.errors import AuditWriteError, ClientCancelled, grpc_status, scan_outcome
from broker.identity import MAX_END_USER
from broker.outcome import SourceTotals, totals_by_source
from broker.policy.admission import MAX_CASE_REF, MAX_PURPOSE

if TYPE_CHECKING:
    from collections.abc import Mapping

    from accord.audit.log import AuditLog
    from accord.v1 import broker_pb2
    from broker.budget import Charge
    from broker.fanout import ScanResult
    from broker.identity import Principal
    from broker.metrics import BrokerMetrics
    from broker.prepare import PreparedQuery
    from broker.readiness import Readiness


#: What a record keeps of a field longer than its limit: this many characters.
AUDIT_PREFIX = 200
TRUNCATED = "…[truncated]"
#: Longest error message a refusal carries or a record keeps (a caller's
#: metadata limit is 16 KiB).
MAX_PUBLIC_MESSAGE = 1000
#: The outcome of a query's access record: its answer began; how it ended is
#: in the ``query_end`` record of the same ``query_id``.
STARTED = "STARTED"
#: Limits of the fields a record keeps whole (admission refuses longer ones);
#: sql's is the ``max_sql_bytes`` setting, passed to :meth:`QueryRecord.open`.
FIELD_LIMITS = {
    "purpose": MAX_PURPOSE,
    "case_ref": MAX_CASE_REF,
    "end_user": MAX_END_USER,
    "error": MAX_PUBLIC_MESSAGE,
}


def bounded(value: str, limit: int, truncated: dict[str, int], name: str) -> str:
    """``value`` if its UTF-8 form fits in ``limit`` bytes, else a short prefix
    with a marker (the original length noted in ``truncated[name]``).

    >>> seen: dict[str, int] = {}
    >>> bounded("x" * 1000, 64, seen, "sql")[-15:], seen
    ('xxx…[truncated]', {'sql': 1000})
    """
    size = len(value.encode("utf-8", "surrogatepass"))
    if size <= limit:
        return value
    truncated[name] = size
    return value[: min(AUDIT_PREFIX, limit)] + TRUNCATED


@dataclass(frozen=True)
class Plan:
    """What the audit keeps of a planned query."""

    rewritten_sql_sha256: str
    tables: dict[str, list[str]]  # table -> columns read
    masks: list[str]
    row_filters: list[str]
    sources: list[str]  # the sources it asks
    fps_numbers: list[str] = field(default_factory=list)  # looked up, after folding


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
    truncated: dict[str, int] = field(default_factory=dict)  # field -> bytes sent
    # aggregate-only: the groups the release withheld (never told to the
    # caller) and how the answer was released
    groups_suppressed: int = 0
    disclosure: str = ""
    # differentially private roles: what the answer cost its partner
    privacy: Charge | None = None
    # the endpoint the call came by when not accord.v1.Broker ("flight_sql")
    interface: str = ""

    @classmethod
    def open(
        cls,
        event: str,
        query_id: str,
        principal: Principal,
        request: broker_pb2.QueryRequest | None,
        started: float,
        max_sql_bytes: int,
    ) -> QueryRecord:
        """A record for a call that arrived at ``started`` (monotonic); its
        fields bounded. ``request`` None: the call's body did not decode."""
        cut: dict[str, int] = {}
        purpose, case_ref, sql = (
            (request.purpose, request.case_ref, request.sql) if request is not None else ("",) * 3
        )
        return cls(
            event,
            query_id,
            principal,
            bounded(purpose, FIELD_LIMITS["purpose"], cut, "purpose"),
            bounded(case_ref, FIELD_LIMITS["case_ref"], cut, "case_ref"),
            bounded(sql, max_sql_bytes, cut, "sql"),
            started,
            truncated=cut,
        )

    def admitted(self, request: broker_pb2.QueryRequest) -> None:
        """The fields as admitted (normalized, within their limits)."""
        self.purpose, self.case_ref, self.sql = request.purpose, request.case_ref, request.sql

    def planned(self, prepared: PreparedQuery) -> None:
        touched: dict[str, set[str]] = {}
        for ref in prepared.plan.references:
            touched.setdefault(ref.table, set()).update(ref.columns)
        self.plan = Plan(
            rewritten_sql_sha256=hashlib.sha256(prepared.rewritten_sql.encode()).hexdigest(),
            tables={table: sorted(columns) for table, columns in touched.items()},
            masks=list(prepared.masks),
            row_filters=list(prepared.row_filters),
            sources=sorted({s.source for ref in prepared.plan.references for s in ref.scans}),
            fps_numbers=list(prepared.fps_numbers),
        )

    def fetched(self, results: list[ScanResult]) -> None:
        self.sources = totals_by_source(results)

    def charged(self, charge: Charge) -> None:
        self.privacy = charge

    def released(self, withheld: int, method: str) -> None:
        self.groups_suppressed, self.disclosure = withheld, method

    def as_dict(
        self, trailer: broker_pb2.QueryTrailer | None, error: BaseException | None
    ) -> dict[str, Any]:
        """The one record of a query none of whose answer left (refused,
        failed or cancelled first), or of an explain: who, what, how it ended."""
        cut = dict(self.truncated)
        return {
            "event": self.event,
            "query_id": self.query_id,
            **self._planned(),
            **self._caller(cut),
            **self._request(),
            **self._ending(trailer, error, trailer.rows if trailer is not None else 0, cut),
            **({"truncated": cut} if cut else {}),
        }

    def access(self) -> dict[str, Any]:
        """The record written before the answer's first message: who asked,
        why, and what the answer reads (outcome :data:`STARTED`)."""
        cut = dict(self.truncated)
        return {
            "event": self.event,
            "query_id": self.query_id,
            **self._planned(),
            **self._caller(cut),
            **self._request(),
            "outcome": STARTED,
            **({"truncated": cut} if cut else {}),
        }

    def completion(
        self,
        trailer: broker_pb2.QueryTrailer | None,
        error: BaseException | None,
        rows_sent: int,
    ) -> dict[str, Any]:
        """The ``query_end`` record of an answer whose access was recorded:
        the rows that left (``rows_returned``), each source, how it ended."""
        cut: dict[str, int] = {}
        ended = {
            "event": f"{self.event}_end",
            "query_id": self.query_id,
            **self._caller(cut),
            **({"interface": self.interface} if self.interface else {}),
            **self._ending(trailer, error, rows_sent, cut),
        }
        if isinstance(error, ClientCancelled):
            ended["cancelled_after_rows"] = rows_sent
        return {**ended, **({"truncated": cut} if cut else {})}

    def _planned(self) -> dict[str, Any]:
        if self.plan is None:
            return {}
        return {
            "rewritten_sql_sha256": self.plan.rewritten_sql_sha256,
            "tables": self.plan.tables,
            "masks": self.plan.masks,
            "row_filters": self.plan.row_filters,
            "fps_numbers": self.plan.fps_numbers,
            "sources_asked": self.plan.sources,
        }

    def _caller(self, cut: dict[str, int]) -> dict[str, Any]:
        partner = self.principal.partner
        return {
            "partner": partner.name,
            "organization": partner.organization,
            "role": partner.role,
            "certificate_sha256": self.principal.fingerprint,
            "certificate_serial": str(self.principal.serial),
            "end_user": bounded(self.principal.end_user, FIELD_LIMITS["end_user"], cut, "end_user"),
        }

    def _request(self) -> dict[str, Any]:
        via = {"interface": self.interface} if self.interface else {}
        return {"purpose": self.purpose, "case_ref": self.case_ref, "sql": self.sql, **via}

    def _ending(
        self,
        trailer: broker_pb2.QueryTrailer | None,
        error: BaseException | None,
        rows: int,
        cut: dict[str, int],
    ) -> dict[str, Any]:
        status, message = grpc_status(error) if error is not None else (grpc.StatusCode.OK, "")
        visible = {s.source: s.rows for s in trailer.sources} if trailer is not None else {}
        return {
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
            "rows_returned": rows,
            "groups_suppressed": self.groups_suppressed,
            **({"disclosure": self.disclosure} if self.disclosure else {}),
            **({"privacy": self.privacy.as_record()} if self.privacy is not None else {}),
            "partial": trailer.partial if trailer is not None else False,
            "duration_ms": round((time.monotonic() - self.started) * 1000, 1),
            "outcome": status.name,
            "error": bounded(message, FIELD_LIMITS["error"], cut, "error"),
        }


async def write_audit(
    record: Mapping[str, Any],
    audit: AuditLog | None,
    metrics: BrokerMetrics | None = None,
    readiness: Readiness | None = None,
) -> None:
    """Writes one audit record durably, counting it; or raises AuditWriteError,
    counting the failure and making the broker probe its trail at once.

    A write once begun is finished, even if the caller is cancelled while it
    waits (a cancelled thread-pool job that had not started would otherwise
    never run): the caller then has to take the record as written."""
    if audit is None:
        return
    try:
        await asyncio.shield(asyncio.to_thread(audit.append, dict(record)))
    except AuditWriteError:
        if metrics is not None:
            metrics.audit_write_failures.inc()
        if readiness is not None:
            readiness.audit_failed()
        raise
    if metrics is not None:
        metrics.audit_records.inc()
