"""How a query's scans ended: whether the answer can stand, and what the
trailer says of each source.

Both ways of answering (merged whole in ``broker.pipeline``, streamed in
``broker.stream``) judge their scans here, so the rules cannot drift apart:
a per-query budget exceeded fails the query; a failed source fails it too
unless the caller allowed a partial answer; and a streamed source that
failed after part of its rows went out voids the answer whatever
``allow_partial`` says (its rows cannot be taken back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from accord.errors import (
    ScanCancelled,
    SourceError,
    SourcesMissing,
    SourceUnavailable,
    scan_outcome,
    source_state,
)
from accord.v1 import broker_pb2

if TYPE_CHECKING:
    from broker.fanout import ScanResult


@dataclass
class SourceTotals:
    """One source over all its scans in a query."""

    scans: int = 0
    rows: int = 0  # sent by the source: hidden rows included
    bytes: int = 0
    elapsed_ms: float = 0.0  # the slowest scan
    error: SourceError | None = None  # the first
    #: "table.column" -> stored values sent as NULL for not fitting the model
    bad_values: dict[str, int] = field(default_factory=dict)


def totals_by_source(results: list[ScanResult]) -> dict[str, SourceTotals]:
    totals: dict[str, SourceTotals] = {}
    for r in results:
        t = totals.setdefault(r.source, SourceTotals())
        t.scans += 1
        t.rows += r.rows
        t.bytes += r.bytes
        t.elapsed_ms = max(t.elapsed_ms, r.elapsed_ms)
        t.error = t.error or r.error
        for column, n in r.bad_values.items():
            key = f"{r.reference.table}.{column}"
            t.bad_values[key] = t.bad_values.get(key, 0) + n
    return totals


def check_outcome(
    results: list[ScanResult], allow_partial: bool, *, streamed: bool = False
) -> list[ScanResult]:
    """Raises where the answer cannot stand; returns the failed scans (the
    sources a partial answer leaves out)."""
    exhausted = next((r.exhausted for r in results if r.exhausted is not None), None)
    if exhausted is not None:
        raise exhausted
    failed = [r for r in results if r.error is not None]
    half_sent = [r for r in failed if r.rows] if streamed else []
    if half_sent:
        raise SourceUnavailable(
            ", ".join(sorted({r.source for r in half_sent})),
            "failed after part of its rows went out; the answer is void, run the query again",
        )
    if failed and not allow_partial:
        raise missing_sources_error(failed)
    return failed


def missing_sources_error(failed: list[ScanResult]) -> SourcesMissing:
    """Names the sources that failed, not those the broker stopped because of
    them, and says what would help: more time when they ran out of it, else
    a later retry; a partial answer either way."""
    culprits = [r for r in failed if not isinstance(r.error, ScanCancelled)] or failed
    reasons = sorted({f"{r.source} ({r.error.reason})" for r in culprits if r.error})
    states = {r.source: scan_outcome(r.error) for r in culprits}
    if all(state == "timeout" for state in states.values()):
        remedy = "Give the query a longer deadline (timeout_ms)"
    elif any(state == "timeout" for state in states.values()):
        remedy = "Retry later, with a longer deadline (timeout_ms)"
    else:
        remedy = "Retry later"
    return SourcesMissing(
        ", ".join(sorted(states)),
        f"missing from the answer: {'; '.join(reasons)}. {remedy}, or set "
        "allow_partial to accept an answer without them",
        states,
    )


def source_statuses(
    results: list[ScanResult], visible: dict[str, int] | None
) -> list[broker_pb2.SourceStatus]:
    """Per source over all its scans: state, rows, slowest scan.

    ``rows`` counts the rows of that source the caller's views held, never
    the raw rows fetched (those include rows the policy hides, and would
    tell how many). Aggregate-only callers get no counts at all
    (``visible`` is None): a source's count under their filter would give
    away a group the answer suppressed; nor do callers denied ``source``
    (the count would say which systems hold the rows). ``bad_values`` counts the stored
    values that arrived as NULL for not fitting the model, never the values,
    and only where the caller's views held every row the source sent: a
    count that included rows the policy hides would say that such rows exist
    (the operators see every count in the metrics and the audit record).
    """
    return [
        broker_pb2.SourceStatus(
            source=source,
            scans=t.scans,
            elapsed_ms=t.elapsed_ms,
            state=source_state(t.error),
            error=t.error.reason if t.error else "",
            rows=(visible or {}).get(source, 0),
            bad_values=(
                sum(t.bad_values.values())
                if visible is not None and visible.get(source, 0) == t.rows
                else 0
            ),
        )
        for source, t in sorted(totals_by_source(results).items())
    ]
