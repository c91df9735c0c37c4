"""Merge: run the rewritten query over the sources' Arrow data in DuckDB.

One in-memory DuckDB database per broker, locked down before any query runs:
no extension is installed or loaded, nothing outside the process can be
read or written, and the configuration cannot be changed afterwards. Each
query gets its own cursor and registers its Arrow tables under names unique
to the query, so concurrent queries never see each other's data.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from accord.catalog import SOURCE_COLUMN
from accord.errors import AccordError, InvalidQuery, ResourceExhausted
from broker.policy.masks import bind_keyed_hash

if TYPE_CHECKING:
    from accord.federation import Federation
    from broker.fanout import ScanResult
    from broker.planner import QueryPlan

log = logging.getLogger("accord.merge")


def locked_down_duckdb(threads: int = 2, memory_limit: str = "2GB") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can only compute over what is registered in it."""
    con = duckdb.connect(
        ":memory:",
        config={
            # The wheels default both to on; off first, before anything can load.
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        },
    )
    con.execute("SET enable_external_access = false")  # no files, no network, no ATTACH
    con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET lock_configuration = true")  # last: nothing can undo the above
    return con


class Merger:
    """Runs merge queries; one shared locked-down database, a cursor per query."""

    def __init__(self, federation: Federation) -> None:
        self.federation = federation
        self._db = locked_down_duckdb()
        self._lock = threading.Lock()  # cursor() on the shared connection is not thread-safe

    def arrow_tables(self, plan: QueryPlan, results: list[ScanResult]) -> dict[str, pa.Table]:
        """Per table reference: the union over sources, with a ``source`` column."""
        tables: dict[str, pa.Table] = {}
        for ref in plan.references:
            logical = self.federation.tables[ref.table]
            schema = logical.arrow_schema(ref.columns).append(pa.field(SOURCE_COLUMN, pa.string()))
            parts = [
                aligned(
                    pa.Table.from_batches(r.batches, schema=logical.arrow_schema(r.spec.columns)),
                    r.source,
                    logical.arrow_schema(r.spec.columns),
                    schema,
                )
                for r in results
                if r.reference is ref and r.error is None
            ]
            tables[ref.ref_id] = pa.concat_tables(parts) if parts else schema.empty_table()
        return tables

    def run(
        self, plan: QueryPlan, tables: dict[str, pa.Table], keyed_hash_key: bytes = b""
    ) -> tuple[pa.Table, dict[str, int]]:
        """Registers the tables on a fresh cursor, materializes the secure views,
        runs the merge SQL; returns the answer and the visible rows per source.

        ``keyed_hash_key`` is the caller's key for ``keyed_hash`` masks; it is
        bound into the SQL only here, so no plan or Explain ever shows it.
        """
        sql = bind_keyed_hash(plan.merge.copy(), keyed_hash_key).sql(dialect="duckdb")
        with self._lock:
            cursor = self._db.cursor()
        try:
            for name, table in tables.items():
                cursor.register(name, table)
            visible = self._materialize(cursor, plan, keyed_hash_key)
            try:
                return cursor.sql(sql).to_arrow_table(), visible
            except duckdb.Error as exc:
                raise _merge_error(exc) from exc
        finally:
            cursor.close()

    def _materialize(
        self, cursor: duckdb.DuckDBPyConnection, plan: QueryPlan, key: bytes
    ) -> dict[str, int]:
        """Computes each secure view, registers it, counts its rows per source.

        A failure here is the policy's (a mask over stored data), and its
        message could quote raw values: the caller gets a generic error.
        """
        visible: dict[str, int] = {}
        for name, view in plan.views:
            sql = bind_keyed_hash(view.copy(), key).sql(dialect="duckdb")
            try:
                table = cursor.sql(sql).to_arrow_table()
            except duckdb.Error as exc:
                log.error("secure view %s failed: %s", name, exc)
                raise AccordError(
                    "the policy view of a table could not be computed; "
                    "the operators have the details"
                ) from exc
            cursor.register(name, table)
            if table.num_rows:
                for entry in pc.value_counts(table.column(SOURCE_COLUMN)).to_pylist():
                    visible[entry["values"]] = visible.get(entry["values"], 0) + entry["counts"]
        return visible


def aligned(table: pa.Table, source: str, received: pa.Schema, schema: pa.Schema) -> pa.Table:
    """One source's rows in the reference's schema: columns the source does
    not release become NULL, and every row is tagged with its source."""
    columns = [
        table.column(f.name) if f.name in received.names else pa.nulls(table.num_rows, f.type)
        for f in schema
        if f.name != SOURCE_COLUMN
    ]
    columns.append(pa.array([source] * table.num_rows, pa.string()))
    return pa.Table.from_arrays(columns, schema=schema)


def _merge_error(exc: duckdb.Error) -> AccordError:
    """DuckDB errors at run time are the query's fault (a bad cast, division...)."""
    message = str(exc).splitlines()[0]
    if isinstance(exc, duckdb.ParserException):  # sqlglot wrote a form DuckDB does not read
        return InvalidQuery(f"this form of query is not supported: {message}")
    if isinstance(exc, duckdb.OutOfMemoryException):
        return ResourceExhausted("the merge ran out of its memory limit; narrow the query")
    if isinstance(
        exc,
        (
            duckdb.ConversionException,
            duckdb.BinderException,
            duckdb.InvalidInputException,
            duckdb.OutOfRangeException,
        ),
    ):
        return InvalidQuery(f"the query failed while merging: {message}")
    return AccordError(f"the merge failed: {message}")
