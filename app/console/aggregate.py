"""The aggregate builder for aggregate-only roles (statistics).

It writes one ``GROUP BY`` query from a table, one or two dimensions and a
measure, asks the broker, and lays the answer out as a table of every
combination of the dimension values it knows: those in the answer, and for
``source`` the systems the catalog says serve the table. A combination the
broker did not release is shown as suppressed: the broker withholds a group
covering fewer persons than the role's threshold, and an empty one too, and
does not say which (``broker.policy.disclosure``), so neither does the console.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import Response
from starlette.routing import Route

from app.console import broker_calls
from app.console.pages import config_of, gate, off_loop, render

if TYPE_CHECKING:
    import pyarrow as pa
    from starlette.requests import Request

    from accord.client import BrokerClient
    from accord.v1 import broker_pb2

#: A name the builder puts into SQL: a catalog name, checked against the catalog too.
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
MEASURES = ("count", "sum", "avg")
SUPPRESSED = "suppressed"
NONE = "none"


@dataclass(frozen=True)
class Grid:
    dimensions: tuple[str, ...]
    measure: str
    #: (dimension values, the released value or SUPPRESSED)
    cells: list[tuple[tuple[str, ...], str]]

    @property
    def pivot(self) -> tuple[list[str], list[tuple[str, list[str]]]]:
        """Two dimensions as a cross table: the second's values across, the first's down."""
        across = sorted({combo[1] for combo, _ in self.cells})
        values = dict(self.cells)
        down = sorted({combo[0] for combo, _ in self.cells})
        return across, [(d, [values[(d, a)] for a in across]) for d in down]

    @property
    def suppressed(self) -> int:
        return sum(1 for _, value in self.cells if value == SUPPRESSED)

    @property
    def empty(self) -> int:
        return sum(1 for _, value in self.cells if value == NONE)


def builder_sql(table: str, dimensions: list[str], measure: str, column: str) -> str:
    """The query the builder asks.

    >>> builder_sql("offenders", ["source", "status"], "count", "")
    'SELECT source, status, count(*) AS value FROM offenders GROUP BY source, status'
    >>> builder_sql("sentences", ["offence_code"], "avg", "length_days")
    'SELECT offence_code, avg(length_days) AS value FROM sentences GROUP BY offence_code'
    """
    names = [table, *dimensions] + ([column] if column else [])
    if not all(_NAME.match(n) for n in names) or measure not in MEASURES:
        raise ValueError("not a catalog name")
    value = "count(*)" if measure == "count" else f"{measure}({column})"
    dims = ", ".join(dimensions)
    return f"SELECT {dims}, {value} AS value FROM {table} GROUP BY {dims}"


def grid(
    answer: pa.Table,
    dimensions: list[str],
    measure: str,
    known: dict[str, list[str]],
    missing: str = SUPPRESSED,
) -> Grid:
    """Every combination of known values, each released or ``missing``
    (suppressed for an aggregate-only role; for another, a group with no row)."""
    released: dict[tuple[str, ...], str] = {}
    for row in answer.to_pylist():
        key = tuple("" if row[d] is None else str(row[d]) for d in dimensions)
        released[key] = "" if row["value"] is None else str(row["value"])
    values = [
        sorted({*known.get(d, []), *(k[i] for k in released)}) for i, d in enumerate(dimensions)
    ]
    cells = [(combo, released.get(combo, missing)) for combo in itertools.product(*values)]
    return Grid(tuple(dimensions), measure, cells)


def _table(catalog: broker_pb2.CatalogResponse, name: str) -> broker_pb2.CatalogTable | None:
    return next((t for t in catalog.tables if t.name == name), None)


async def builder(request: Request) -> Response:
    person = gate(request)
    if isinstance(person, Response):
        return person
    config = config_of(request)
    context: dict[str, Any] = {}
    try:
        with broker_calls.client(config, person) as broker:
            catalog = await off_loop(broker.catalog)
            if request.method == "POST":
                context.update(await _ask(request, broker, catalog))
    except broker_calls.BROKER_ERRORS as exc:
        context["error"] = broker_calls.failure_text(exc)
        catalog = None
    columns = sorted({c.name for t in catalog.tables for c in t.columns}) if catalog else []
    return render(request, "aggregate.html.j2", catalog=catalog, all_columns=columns, **context)


async def _ask(
    request: Request, broker: BrokerClient, catalog: broker_pb2.CatalogResponse
) -> dict[str, Any]:
    form = await request.form()
    table = _table(catalog, str(form.get("table", "")))
    if table is None:
        return {"error": "Choose a table of the catalog."}
    columns = {c.name for c in table.columns}
    dimensions = [d for d in (str(form.get("dim1", "")), str(form.get("dim2", ""))) if d]
    measure = str(form.get("measure", "count"))
    column = str(form.get("column", "")) if measure != "count" else ""
    if not dimensions or len(set(dimensions)) != len(dimensions):
        return {"error": "Choose one or two different dimensions."}
    if not set(dimensions) <= columns or (column and column not in columns):
        return {"error": "Choose dimensions and a measure among the table's columns."}
    if measure != "count" and not column:
        return {"error": "A sum or an average needs a column."}
    sql = builder_sql(table.name, dimensions, measure, column)
    try:
        result = await off_loop(lambda: broker.query(sql))
    except broker_calls.BROKER_ERRORS as exc:
        return {"error": broker_calls.failure_text(exc), "sql": sql}
    known = {"source": list(table.sources)}
    label = "count" if measure == "count" else f"{measure}({column})"
    missing = SUPPRESSED if catalog.aggregate_only else NONE
    return {
        "grid": grid(result.table, dimensions, label, known, missing),
        "sql": sql,
        "chosen": {
            "table": table.name,
            "dim1": dimensions[0],
            "dim2": dimensions[1] if len(dimensions) > 1 else "",
            "measure": measure,
            "column": column,
        },
    }


ROUTES = [Route("/aggregate", builder, methods=["GET", "POST"])]
