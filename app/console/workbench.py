"""The SQL workbench: the role's catalog, Explain, one page of results at a
time (asked again for each page, ``app.console.paging``) and exports.

An export is its own broker query, audited with the person's name followed
by ``[export csv]`` or ``[export parquet]`` as the end user: the broker's
audit tells an export from a page read on screen, with the query and its
purpose as for any query.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
from starlette.responses import Response
from starlette.routing import Route

from app.console import broker_calls
from app.console.pages import config_of, gate, is_htmx, off_loop, render
from app.console.paging import PAGE_ROWS, page_sql

if TYPE_CHECKING:
    import pyarrow as pa
    from starlette.requests import Request

#: Longest SQL the form takes (the broker bounds it too).
MAX_SQL = 20_000
#: The last page a form may ask for (past it, the query's own LIMIT is the way).
MAX_PAGE = 10_000
#: Rows an export holds at most (the broker's own limits apply first).
MAX_EXPORT_ROWS = 100_000
EXPORTS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
}


async def _catalog(request: Request, person: dict[str, str]) -> tuple[object | None, str]:
    try:
        with broker_calls.client(config_of(request), person) as broker:
            return await off_loop(broker.catalog), ""
    except broker_calls.BROKER_ERRORS as exc:
        return None, broker_calls.failure_text(exc)


async def workbench_page(request: Request) -> Response:
    person = gate(request)
    if isinstance(person, Response):
        return person
    catalog, error = await _catalog(request, person)
    return render(request, "workbench.html.j2", catalog=catalog, error=error, sql="")


def _cells(table: pa.Table) -> list[list[str]]:
    return [["" if v is None else str(v) for v in row.values()] for row in table.to_pylist()]


async def run(request: Request) -> Response:
    person = gate(request)
    if isinstance(person, Response):
        return person
    form = await request.form()
    sql = str(form.get("sql", ""))[:MAX_SQL]
    raw_page = str(form.get("page", "0"))
    page = min(int(raw_page), MAX_PAGE) if raw_page.isdigit() else 0
    context: dict[str, Any] = {"sql": sql, "page": page, "page_rows": PAGE_ROWS}
    paged = page_sql(sql, page)
    if paged is None:
        context.update(columns=[], rows=[], more=False)
    else:
        try:
            with broker_calls.client(config_of(request), person) as broker:
                result = await off_loop(lambda: broker.query(paged))
        except broker_calls.BROKER_ERRORS as exc:
            context["error"] = broker_calls.failure_text(exc)
        else:
            rows = _cells(result.table)
            context.update(
                columns=result.table.column_names,
                rows=rows[:PAGE_ROWS],
                more=len(rows) > PAGE_ROWS,
                query_id=result.query_id,
                sources=result.trailer.sources,
                partial=result.trailer.partial,
            )
    return await _workbench(request, person, "results.html.j2", context)


async def explain(request: Request) -> Response:
    person = gate(request)
    if isinstance(person, Response):
        return person
    form = await request.form()
    sql = str(form.get("sql", ""))[:MAX_SQL]
    context: dict[str, Any] = {"sql": sql}
    try:
        with broker_calls.client(config_of(request), person) as broker:
            context["plan"] = await off_loop(lambda: broker.explain(sql))
    except broker_calls.BROKER_ERRORS as exc:
        context["error"] = broker_calls.failure_text(exc)
    return await _workbench(request, person, "explain.html.j2", context)


async def _workbench(
    request: Request, person: dict[str, str], partial: str, context: dict[str, Any]
) -> Response:
    """The partial alone for htmx; the whole workbench page for a plain form post."""
    if is_htmx(request):
        return render(request, partial, **context)
    catalog, error = await _catalog(request, person)
    return render(
        request,
        "workbench.html.j2",
        catalog=catalog,
        partial=partial,
        **{"error": error, **context},
    )


async def export(request: Request) -> Response:
    person = gate(request)
    if isinstance(person, Response):
        return person
    form = await request.form()
    sql = str(form.get("sql", ""))[:MAX_SQL]
    kind = str(form.get("format", ""))
    if kind not in EXPORTS:
        return await _workbench(
            request,
            person,
            "results.html.j2",
            {"sql": sql, "error": "Choose CSV or Parquet to export."},
        )
    bounded = page_sql(sql, 0, MAX_EXPORT_ROWS - 1) or sql
    try:
        with broker_calls.client(config_of(request), person, f"export {kind}") as broker:
            result = await off_loop(lambda: broker.query(bounded))
    except broker_calls.BROKER_ERRORS as exc:
        return await _workbench(
            request,
            person,
            "results.html.j2",
            {"sql": sql, "error": broker_calls.failure_text(exc)},
        )
    media, suffix = EXPORTS[kind]
    body = _csv(result.table) if kind == "csv" else _parquet(result.table)
    return Response(
        body,
        media_type=media,
        headers={
            "content-disposition": f'attachment; filename="accord-{result.query_id}.{suffix}"'
        },
    )


#: What makes a spreadsheet read a cell as a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A value as a CSV cell a spreadsheet shows as text: a stored text that
    starts like a formula (``=HYPERLINK(...)``) gets a leading apostrophe."""
    if value is None:
        return ""
    text = str(value)
    return f"'{text}" if isinstance(value, str) and text.startswith(FORMULA_STARTS) else text


def _csv(table: pa.Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([csv_cell(name) for name in table.column_names])
    writer.writerows([csv_cell(v) for v in row.values()] for row in table.to_pylist())
    return out.getvalue().encode("utf-8")


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


ROUTES = [
    Route("/workbench", workbench_page, methods=["GET"]),
    Route("/workbench/run", run, methods=["POST"]),
    Route("/workbench/explain", explain, methods=["POST"]),
    Route("/workbench/export", export, methods=["POST"]),
]
