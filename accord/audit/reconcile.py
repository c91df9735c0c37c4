"""``accord audit reconcile``: every scan an adapter served, matched against
the broker's record of the query it was for.

It exists because a trail at one end cannot show what bypassed that end: a
scan made with the broker's client key by someone other than the broker
leaves no broker record, but the adapter's own trail (``adapters.trace``)
has it. A scan is *matched* when the broker's trail holds a ``query`` or
``explain`` record (or a part of a ``history`` record) of its ``query_id`` that asked its source
(``sources_asked``), read its table (``tables``) and, if the scan names a
partner, names the same one. Every other scan is *unmatched*.

Also reported, for information only: broker queries that asked a source of
which no scan is recorded (the adapter was down, its trail was lost, or it
keeps none), and callers the adapters refused.

The record vocabulary of an adapter's trail is defined here, the one place
that both the writer (``adapters.trace``) and this reader import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from accord.audit.format import as_utc

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

#: An adapter's access record of one scan, written before its header leaves.
SCAN = "scan"
#: How that scan ended; ``access_seq`` is the seq of its ``scan`` record.
SCAN_END = "scan_end"
#: A caller the adapter refused (not the broker's certificate).
SCAN_REFUSED = "scan_refused"
#: The broker's records that name the sources a query asked.
BROKER_EVENTS = frozenset({"query", "explain"})
#: The broker's record of one person's history: its ``parts`` are queries.
HISTORY = "history"
#: A source the broker did not contact (its circuit was open): no scan expected.
NOT_CONTACTED = frozenset({"circuit_open"})


@dataclass(frozen=True)
class UnmatchedScan:
    """A scan no broker record accounts for, and why."""

    source: str
    ts: str
    query_id: str
    partner: str
    caller_cn: str
    caller_sha256: str
    table: str
    columns: list[str]
    predicate: str
    rows: int | None  # None: no scan_end recorded
    outcome: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MissingScan:
    """A source a broker query asked of which no scan is recorded."""

    source: str
    ts: str
    query_id: str
    partner: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Reconciliation:
    scans: int = 0
    matched: int = 0
    broker_queries: int = 0
    unmatched: list[UnmatchedScan] = field(default_factory=list)
    missing: list[MissingScan] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scans": self.scans,
            "matched": self.matched,
            "broker_queries": self.broker_queries,
            "unmatched": [u.as_dict() for u in self.unmatched],
            "missing": [m.as_dict() for m in self.missing],
            "refused": self.refused,
        }


def reconcile(
    broker: Iterable[Mapping[str, Any]],
    adapters: Mapping[str, Iterable[Mapping[str, Any]]],
    *,
    since: datetime | None = None,
) -> Reconciliation:
    """Match the scans of ``adapters`` (source code -> its trail's records)
    against the ``broker`` trail's records.

    ``since`` limits what is reported (scans, refusals and broker queries
    from then on); every broker record is still read, so a scan just after
    ``since`` of a query recorded just before it is matched.
    """
    lo = as_utc(since) if since is not None else None
    asked, not_contacted = _index_broker(broker)
    report = Reconciliation()
    scanned: set[tuple[str, str]] = set()  # (query id, source)
    for source, records in sorted(adapters.items()):
        starts, ends, refused = _split(records)
        report.refused.extend({"source": _code(source), **r} for r in refused if _from(r, lo))
        for start in starts:
            code = _code(start.get("source") or source)
            query_id = str(start.get("query_id") or "")
            scanned.add((query_id, code))
            if not _from(start, lo):
                continue
            report.scans += 1
            reason = _mismatch(start, code, asked.get(query_id, []))
            if reason:
                end = ends.get(start["seq"]) if isinstance(start.get("seq"), int) else None
                report.unmatched.append(_unmatched(start, end, code, reason))
            else:
                report.matched += 1
    accounted = scanned | not_contacted
    for query_id, records in asked.items():
        for record in (r for r in records if _from(r, lo)):
            report.broker_queries += 1
            report.missing.extend(
                MissingScan(
                    _code(s), str(record.get("ts", "")), query_id, str(record.get("partner", ""))
                )
                for s in record.get("sources_asked") or ()
                if (query_id, _code(s)) not in accounted
            )
    return report


def _index_broker(
    broker: Iterable[Mapping[str, Any]],
) -> tuple[dict[str, list[Mapping[str, Any]]], set[tuple[str, str]]]:
    """The broker's records that name the sources asked, by query id; and
    the (query id, source) pairs it never contacted."""
    asked: dict[str, list[Mapping[str, Any]]] = {}
    not_contacted: set[tuple[str, str]] = set()
    for record in _with_history_parts(broker):
        query_id = record.get("query_id")
        if not isinstance(query_id, str) or not query_id:
            continue
        if record.get("event") in BROKER_EVENTS and isinstance(record.get("sources_asked"), list):
            asked.setdefault(query_id, []).append(record)
        for each in record.get("sources") or ():
            if isinstance(each, dict) and each.get("outcome") in NOT_CONTACTED:
                not_contacted.add((query_id, _code(each.get("source"))))
    return asked, not_contacted


def _with_history_parts(
    broker: Iterable[Mapping[str, Any]],
) -> Iterator[Mapping[str, Any]]:
    """The broker's records, each part of a ``history`` record among them as
    a query of its own (its query id, partner, tables, sources asked), timed
    as the history."""
    for record in broker:
        yield record
        if record.get("event") != HISTORY:
            continue
        for part in record.get("parts") or ():
            if isinstance(part, dict):
                yield {
                    **part,
                    "event": "query",
                    "ts": record.get("ts"),
                    "partner": record.get("partner"),
                }


def _split(
    records: Iterable[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], dict[int, Mapping[str, Any]], list[Mapping[str, Any]]]:
    """An adapter trail's scan records, its scan_end records by access seq,
    and its refusals."""
    starts: list[Mapping[str, Any]] = []
    ends: dict[int, Mapping[str, Any]] = {}
    refused: list[Mapping[str, Any]] = []
    for record in records:
        event = record.get("event")
        if event == SCAN:
            starts.append(record)
        elif event == SCAN_END and isinstance(record.get("access_seq"), int):
            ends[record["access_seq"]] = record
        elif event == SCAN_REFUSED:
            refused.append(record)
    return starts, ends, refused


def _mismatch(scan: Mapping[str, Any], code: str, records: list[Mapping[str, Any]]) -> str:
    """Why no broker record accounts for ``scan`` ("" if one does)."""
    if not records:
        return "no broker record of this query id"
    reasons = []
    for record in records:
        if code not in {_code(s) for s in record.get("sources_asked") or ()}:
            reasons.append(f"the broker's query did not ask {code}")
        elif isinstance(record.get("tables"), dict) and scan.get("table") not in record["tables"]:
            reasons.append("the broker's query did not read this table")
        elif scan.get("partner") and scan.get("partner") != record.get("partner"):
            reasons.append("the broker's query was for another partner")
        else:
            return ""
    return reasons[0]


def _unmatched(
    start: Mapping[str, Any], end: Mapping[str, Any] | None, code: str, reason: str
) -> UnmatchedScan:
    columns = start.get("columns")
    rows = end.get("rows") if end is not None else None
    return UnmatchedScan(
        source=code,
        ts=str(start.get("ts", "")),
        query_id=str(start.get("query_id") or ""),
        partner=str(start.get("partner") or ""),
        caller_cn=str(start.get("caller_cn") or ""),
        caller_sha256=str(start.get("caller_sha256") or ""),
        table=str(start.get("table") or ""),
        columns=[str(c) for c in columns] if isinstance(columns, list) else [],
        predicate=str(start.get("predicate") or ""),
        rows=rows if isinstance(rows, int) else None,
        outcome=str(end.get("outcome")) if end is not None else "NO END RECORD",
        reason=reason,
    )


def _code(source: object) -> str:
    """Source codes compare upper-case (trail directories are lower-case)."""
    return str(source or "").upper()


def _from(record: Mapping[str, Any], lo: datetime | None) -> bool:
    if lo is None:
        return True
    ts = record.get("ts")
    try:
        return isinstance(ts, str) and datetime.fromisoformat(ts) >= lo
    except ValueError:
        return False
