"""The adapter's own trail of the scans it served: a trace at the source.

The broker records every query it answers, but a scan made with the
broker's client key by anyone else leaves nothing there. So each adapter
keeps its own hash-chained, signed trail (``accord.audit``, its own key and
pin) and ``accord audit reconcile`` matches it against the broker's.

Per scan, two records (vocabulary in ``accord.audit.reconcile``):

- ``scan``, outcome ``STARTED``: who called (common name, SHA-256 fingerprint
  and serial of the TLS peer's certificate), for which query id, partner and
  end user, and what it asked (table, columns, predicate, limit,
  explain_only). Durable before the header leaves: a scan whose access
  cannot be recorded is refused UNAVAILABLE.
- ``scan_end``: the rows sent, ``OK``, ``DENIED``, ``FAILED`` or
  ``CANCELLED``, and how long it took; ``access_seq`` is the seq of its
  ``scan`` record.

A batch of scans (``ScanBatch``) writes all its ``scan`` records with one
write before its first header, and all its ``scan_end`` records with one
more when it ends.

A caller refused for its certificate gets one ``scan_refused`` record.
Every text the caller sent is kept bounded; no stored value is ever written.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from accord import tls
from accord.audit.reconcile import SCAN, SCAN_END, SCAN_REFUSED
from accord.errors import AuditWriteError, InvalidQuery, PolicyDenied, ScanCancelled

if TYPE_CHECKING:
    from types import TracebackType

    import grpc

    from accord.audit.log import AuditLog
    from accord.v1 import adapter_pb2

log = logging.getLogger("accord.adapter.trace")

STARTED = "STARTED"
#: Longest text a record keeps of one field the caller sent (UTF-8 bytes),
#: and of the predicate; how many columns it keeps.
MAX_TEXT = 256
MAX_PREDICATE = 16 * 1024
MAX_COLUMNS = 256
TRUNCATED = "…[truncated]"


@dataclass(frozen=True)
class Caller:
    """The TLS peer of a call, as its certificate names it."""

    common_name: str
    sha256: str
    serial: str

    @classmethod
    def of(cls, context: grpc.ServicerContext) -> Caller:
        peer = tls.peer_identity(context.auth_context())
        if peer is None:
            return cls("", "", "")
        try:
            cert = x509.load_pem_x509_certificate(peer[1])
        except ValueError:
            return cls(_bounded(peer[0], MAX_TEXT, {}, "cn"), "", "")
        return cls(
            _bounded(peer[0], MAX_TEXT, {}, "cn"),
            cert.fingerprint(hashes.SHA256()).hex(),
            str(cert.serial_number),
        )

    def as_fields(self) -> dict[str, str]:
        return {
            "caller_cn": self.common_name,
            "caller_sha256": self.sha256,
            "caller_serial": self.serial,
        }


class ScanTrace:
    """Writes one adapter's scan records to its ``AuditLog``."""

    def __init__(self, audit: AuditLog, source: str) -> None:
        self.audit = audit
        self.source = source

    def refused(
        self,
        request: adapter_pb2.ScanRequest,
        context: grpc.ServicerContext,
        outcome: str = "PERMISSION_DENIED",
    ) -> None:
        """Records a caller refused for its certificate; the refusal stands
        whether or not the record could be written."""
        cut: dict[str, int] = {}
        record = {
            "event": SCAN_REFUSED,
            "source": self.source,
            "query_id": _bounded(request.query_id, MAX_TEXT, cut, "query_id"),
            "table": _bounded(request.table, MAX_TEXT, cut, "table"),
            **Caller.of(context).as_fields(),
            "outcome": outcome,
            **({"truncated": cut} if cut else {}),
        }
        try:
            self.audit.append(record)
        except AuditWriteError as exc:
            log.error("refused caller not recorded: %s", exc)

    def scan(self, request: adapter_pb2.ScanRequest, context: grpc.ServicerContext) -> TracedScan:
        """Records the scan's access now (AuditWriteError if it cannot be
        written: then it must not be answered); the returned context manager
        records how it ended."""
        return self.scans([request], context)[0]

    def scans(
        self, requests: list[adapter_pb2.ScanRequest], context: grpc.ServicerContext
    ) -> list[TracedScan]:
        """Records the access of every scan of a batch at once, with one
        write (AuditWriteError if they cannot be written: then none may be
        answered)."""
        caller = Caller.of(context).as_fields()
        records, names = [], []
        for request in requests:
            cut: dict[str, int] = {}
            columns = [_bounded(c, MAX_TEXT, cut, "columns") for c in request.columns[:MAX_COLUMNS]]
            if len(request.columns) > MAX_COLUMNS:
                cut["columns"] = len(request.columns)
            table = _bounded(request.table, MAX_TEXT, cut, "table")
            query_id = _bounded(request.query_id, MAX_TEXT, cut, "query_id")
            records.append(
                {
                    "event": SCAN,
                    "source": self.source,
                    "query_id": query_id,
                    "partner": _bounded(request.partner, MAX_TEXT, cut, "partner"),
                    "end_user": _bounded(request.end_user, MAX_TEXT, cut, "end_user"),
                    **caller,
                    "table": table,
                    "columns": columns,
                    "predicate": _bounded(request.predicate, MAX_PREDICATE, cut, "predicate"),
                    "limit": request.limit,
                    "explain_only": request.explain_only,
                    "outcome": STARTED,
                    **({"truncated": cut} if cut else {}),
                }
            )
            names.append((query_id, table))
        written = self.audit.append_many(records)
        return [
            TracedScan(self, int(w["seq"]), query_id, table)
            for w, (query_id, table) in zip(written, names, strict=True)
        ]

    def ended(self, records: list[dict[str, Any]]) -> None:
        """Writes the ``scan_end`` records of a batch (``TracedScan.end``) at once."""
        try:
            self.audit.append_many(records)
        except AuditWriteError as exc:
            # The accesses are recorded; the ends are lost, and reconcile says so.
            log.error("end of %d scans not recorded: %s", len(records), exc)


class TracedScan:
    """One scan whose access is recorded: counts the rows it sends and, on
    leaving the ``with`` block, records how it ended (from the exception
    that left it, if any)."""

    def __init__(self, trace: ScanTrace, access_seq: int, query_id: str, table: str) -> None:
        self.trace = trace
        self.access_seq = access_seq
        self.query_id = query_id
        self.table = table
        self.rows = 0
        self.started = time.monotonic()

    def count(self, rows: int) -> None:
        self.rows += rows

    def begin(self) -> None:
        """The scan starts now (a batch's later scans wait for the earlier ones)."""
        self.started = time.monotonic()

    def __enter__(self) -> TracedScan:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.trace.ended([self.end(exc)])

    def end(self, exc: BaseException | None) -> dict[str, Any]:
        """The ``scan_end`` record of this scan, ended by ``exc`` (None: in full)."""
        outcome = ended_as(exc)
        record: dict[str, Any] = {
            "event": SCAN_END,
            "source": self.trace.source,
            "query_id": self.query_id,
            "access_seq": self.access_seq,
            "table": self.table,
            "rows": self.rows,
            "outcome": outcome,
            "duration_ms": round((time.monotonic() - self.started) * 1000, 1),
        }
        if outcome in {"DENIED", "FAILED"} and exc is not None:
            record["error"] = _bounded(str(exc), 1000, {}, "error")
        return record


def ended_as(error: BaseException | None) -> str:
    """A scan's ``scan_end`` outcome, from what ended it.

    >>> ended_as(None), ended_as(PolicyDenied("no")), ended_as(GeneratorExit())
    ('OK', 'DENIED', 'CANCELLED')
    """
    if error is None:
        return "OK"
    if isinstance(error, ScanCancelled | GeneratorExit):
        return "CANCELLED"  # the broker cancelled, or the call ended under us
    if isinstance(error, PolicyDenied | InvalidQuery):
        return "DENIED"
    return "FAILED"


def _bounded(value: str, limit: int, cut: dict[str, int], name: str) -> str:
    """``value`` if it fits ``limit`` UTF-8 bytes, else a prefix with a marker
    (the original size noted in ``cut[name]``)."""
    size = len(value.encode("utf-8", "surrogatepass"))
    if size <= limit:
        return value
    cut[name] = max(cut.get(name, 0), size)
    return value[: min(200, limit)] + TRUNCATED
