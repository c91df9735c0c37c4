"""Printing query results (an aligned text table, one JSON document, or CSV),
and the report of ``accord audit reconcile``."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
from typing import TYPE_CHECKING, Any

from accord.v1 import broker_pb2

if TYPE_CHECKING:
    import pyarrow as pa

    from accord.audit.reconcile import Reconciliation
    from accord.client import QueryResult

#: Widest a text-table cell is printed; longer values are cut with an ellipsis.
MAX_CELL = 40


def _plain(value: Any) -> Any:
    """JSON-friendly value: dates as ISO text, decimals as numbers."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def table_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """Rows as tuples, by position: a result may repeat a column name."""
    return list(zip(*(column.to_pylist() for column in table.columns), strict=True))


def render_result(result: QueryResult, fmt: str) -> str:
    columns = result.table.column_names
    rows = [[_plain(v) for v in row] for row in table_rows(result.table)]
    if fmt == "json":
        return json.dumps(
            {
                "query_id": result.query_id,
                # True when some source is missing from the rows (see "sources")
                "partial": result.trailer.partial,
                "columns": columns,
                "rows": rows,
                "sources": [
                    {
                        "source": s.source,
                        "status": broker_pb2.SourceState.Name(s.state).removeprefix(
                            "SOURCE_STATE_"
                        ),
                        "rows": s.rows,
                        "bad_values": s.bad_values,
                        "error": s.error or None,
                    }
                    for s in result.trailer.sources
                ],
            },
            ensure_ascii=False,
        )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    return render_table(columns, rows) + "\n" + render_sources(result)


def render_table(columns: list[str], rows: list[list[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, rule, *body, f"({len(rows)} row{'s' if len(rows) != 1 else ''})"])


def render_sources(result: QueryResult) -> str:
    parts = []
    for s in result.trailer.sources:
        state = broker_pb2.SourceState.Name(s.state).removeprefix("SOURCE_STATE_")
        parts.append(f"{s.source} {state} {s.rows} rows {s.elapsed_ms:.0f} ms")
    return "sources: " + "; ".join(parts)


def _cell(value: Any) -> str:
    text = "NULL" if value is None else str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def render_warnings(result: QueryResult) -> list[str]:
    """What the caller should know the answer lacks: sources missing from a
    partial answer, stored values a source could not read (NULL in the answer)."""
    warnings = []
    missing = [s for s in result.trailer.sources if s.state != broker_pb2.SOURCE_STATE_OK]
    if missing:
        warnings.append(
            "WARNING: partial answer; missing sources: "
            + "; ".join(f"{s.source} ({s.error})" for s in missing)
        )
    unread = [s for s in result.trailer.sources if s.bad_values]
    if unread:
        warnings.append(
            "WARNING: stored values that do not fit the federation's model read as NULL: "
            + "; ".join(
                f"{s.source} {s.bad_values} value{'s' if s.bad_values != 1 else ''}" for s in unread
            )
        )
    return warnings


def render_reconciliation(found: Reconciliation) -> str:
    """``accord audit reconcile``'s report: each unmatched scan in full, then
    what is only informational."""
    lines = [
        f"{found.scans} scans, {found.matched} matched to a broker query, "
        f"{len(found.unmatched)} unmatched; {found.broker_queries} broker queries"
    ]
    for scan in found.unmatched:
        rows = "?" if scan.rows is None else str(scan.rows)
        lines.append(
            f"UNMATCHED {scan.ts} {scan.source} query {scan.query_id or '-'} "
            f"(partner {scan.partner or '-'}): {scan.reason}\n"
            f"  caller   {scan.caller_cn} sha256 {scan.caller_sha256}\n"
            f"  scan     {scan.table} ({', '.join(scan.columns)}) "
            f"WHERE {scan.predicate or '(all rows)'}\n"
            f"  ended    {scan.outcome}, {rows} rows"
        )
    for missing in found.missing:
        lines.append(
            f"no scan recorded: {missing.ts} query {missing.query_id} (partner "
            f"{missing.partner}) asked {missing.source} (adapter down, or its trail lost?)"
        )
    for refused in found.refused:
        lines.append(
            f"refused caller: {refused.get('ts', '')} {refused.get('source', '')} "
            f"{refused.get('caller_cn', '')} sha256 {refused.get('caller_sha256', '')}"
        )
    return "\n".join(lines)
