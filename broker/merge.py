"""Merge: run the rewritten query over the sources' Arrow data in DuckDB.

Merges run on the merger's own threads (``ACCORD_MERGE_THREADS``), never on
the default executor, whose threads the audit writer needs: a flood of heavy
merges waits for a merge thread and cannot starve the trail. Each merge
thread has its own in-memory DuckDB database, locked down before any query
runs (no extension installed or loaded, nothing outside the process read or
written, no temporary directory to spill into, the configuration locked),
with its own ``memory_limit`` (``ACCORD_MERGE_MEMORY_MB``). DuckDB's limit
is per database and each database runs one merge at a time, so the limit
bounds one query. Each merge gets a fresh cursor and registers its Arrow
tables on it, so no merge sees another's data.

A merge is bounded while it runs, never after:

- in time: at the query's deadline its cursor is interrupted (``wait_for``
  alone stops waiting, not computing) and its thread is free again; a merge
  still waiting for a thread then never starts;
- in size: the answer is read as a stream of record batches and stopped as
  soon as it passes ``ACCORD_MAX_RESULT_ROWS`` or ``ACCORD_MAX_RESULT_BYTES``;
  a SELECT without a LIMIT gets one a row past the bound, so an ORDER BY
  keeps only that many rows (a top-N) instead of sorting everything;
- in memory: the database's limit; a join, sort or aggregate past it is
  RESOURCE_EXHAUSTED.

DuckDB's error messages may quote the stored value they failed on. Each is
mapped by its kind to an :class:`~accord.errors.AccordError` whose message is
scrubbed (:func:`accord.errors.scrubbed`), and the original is not chained,
so no caller, audit record or logged traceback carries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from accord import ipc
from accord.catalog import SOURCE_COLUMN
from accord.errors import (
    AccordError,
    InvalidQuery,
    QueryTimedOut,
    ResourceExhausted,
    scrubbed,
)
from accord.partial import ROWS, partial_schema
from broker.arrow_select import evaluate
from broker.policy.masks import bind_keyed_hash
from broker.settings import load_limits

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from accord.federation import Federation
    from broker.fanout import ScanResult
    from broker.planner import QueryPlan
    from broker.pushdown.aggregates import AggregatePushdown
    from broker.settings import Limits

log = logging.getLogger("accord.merge")

#: The most input rows merged on the event loop (by Arrow, in microseconds)
#: rather than on a merge thread.
INLINE_ROWS = 2048
#: DuckDB threads of one merge database (each merge thread has its own).
DATABASE_THREADS = 2
#: How often a merge past its deadline is interrupted again until it stops:
#: an interrupt that lands between two of its statements is lost.
REINTERRUPT_S = 0.05
TIMED_OUT = "the query ran past its deadline while merging; narrow it or allow more time"


def locked_down_duckdb(
    threads: int = DATABASE_THREADS, memory_mb: int = 2048
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can only compute over what is registered in
    it, in at most ``memory_mb`` of memory (it never spills to disk)."""
    con = duckdb.connect(
        ":memory:",
        config={
            # The wheels default both to on; off first, before anything can load.
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            # No spilling: past its memory limit a merge fails, it does not
            # fill the disk (and after the lockdown this could not be set).
            "temp_directory": "",
        },
    )
    con.execute("SET enable_external_access = false")  # no files, no network, no ATTACH
    con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET memory_limit = '{int(memory_mb)}MB'")
    con.execute("SET lock_configuration = true")  # last: nothing can undo the above
    return con


class Merger:
    """Runs merge queries on its own bounded threads (see the module docstring)."""

    def __init__(self, federation: Federation, limits: Limits | None = None) -> None:
        self.federation = federation
        self.limits = limits or load_limits()
        self._databases = threading.local()  # one locked-down database per thread
        self._threads = ThreadPoolExecutor(
            max_workers=self.limits.merge_threads, thread_name_prefix="accord-merge"
        )
        self._stopping: set[asyncio.Task[None]] = set()  # merges being interrupted
        self._jobs: set[_Job] = set()  # merges submitted and not yet ended

    def close(self) -> None:
        """Stops the merge threads: merges waiting never start, merges running
        are interrupted until they end. The event loop that re-interrupted
        them may be gone (the broker stopping, a test's loop closed), so a
        thread of its own does it: an interrupt that lands between two of a
        merge's statements is lost, and a cartesian product would run on for
        minutes."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        jobs = list(self._jobs)
        for job in jobs:
            job.stop()
        if jobs:
            threading.Thread(
                target=_interrupt_until_ended, args=(jobs,), name="accord-merge-stop", daemon=True
            ).start()

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
                if r.reference is ref and r.error is None and not r.aggregated
            ]
            tables[ref.ref_id] = pa.concat_tables(parts) if parts else schema.empty_table()
        if plan.aggregate is not None:
            tables[plan.aggregate.partials] = self._pushed_partials_of(plan.aggregate, results)
        return tables

    def _pushed_partials_of(
        self, aggregate: AggregatePushdown, results: list[ScanResult]
    ) -> pa.Table:
        """The partial aggregates the sources computed, each tagged with its source."""
        logical = self.federation.tables[aggregate.table]
        received = partial_schema(logical, aggregate.spec.message())
        schema = received.append(pa.field(SOURCE_COLUMN, pa.string()))
        parts = [
            aligned(pa.Table.from_batches(r.batches, schema=received), r.source, received, schema)
            for r in results
            if r.error is None and r.aggregated
        ]
        partials = pa.concat_tables(parts) if parts else schema.empty_table()
        # A source's aggregate without GROUP BY is one row even over no rows;
        # such a row adds nothing, and would be a group of ``source`` that is not.
        return partials.filter(pc.greater(partials.column(ROWS), 0))

    async def merge(
        self,
        plan: QueryPlan,
        tables: dict[str, pa.Table],
        keyed_hash_key: bytes,
        deadline: float,
    ) -> tuple[pa.Table, dict[str, int]]:
        """:meth:`run` on a merge thread, stopped at ``deadline`` (monotonic):
        QueryTimedOut then, and the merge is interrupted, not left running.
        A few rows that Arrow merges whole are merged here, on the loop: the
        thread hop would cost more than the merge (a point lookup's)."""
        if sum(t.num_rows for t in tables.values()) <= INLINE_ROWS:
            done = self._by_arrow(plan, tables)
            if done is not None:
                return done
        job = _Job(functools.partial(self._run_on, plan, tables, keyed_hash_key))
        context = contextvars.copy_context()  # the query id, for the merge's log lines
        future = asyncio.get_running_loop().run_in_executor(
            self._threads, context.run, job, self._database
        )
        self._jobs.add(job)
        future.add_done_callback(lambda _: self._jobs.discard(job))
        try:
            return await asyncio.wait_for(
                asyncio.shield(future), timeout=max(deadline - time.monotonic(), 0.001)
            )
        except TimeoutError:
            raise QueryTimedOut(TIMED_OUT) from None
        finally:
            if not future.done():  # past the deadline, or the caller left
                self._stop(job, future)

    def run(
        self, plan: QueryPlan, tables: dict[str, pa.Table], keyed_hash_key: bytes = b""
    ) -> tuple[pa.Table, dict[str, int]]:
        """Registers the tables on a fresh cursor, materializes the secure views,
        runs the merge SQL; returns the answer and the visible rows per source.
        Runs in the calling thread, on that thread's database.

        ``keyed_hash_key`` is the caller's key for ``keyed_hash`` masks; it is
        bound into the SQL only here, so no plan or Explain ever shows it.
        """
        cursor = self._database().cursor()
        try:
            return self._run_on(plan, tables, keyed_hash_key, cursor)
        finally:
            cursor.close()

    def _database(self) -> duckdb.DuckDBPyConnection:
        db: duckdb.DuckDBPyConnection | None = getattr(self._databases, "db", None)
        if db is None:
            db = self._databases.db = locked_down_duckdb(memory_mb=self.limits.merge_memory_mb)
        return db

    def _stop(self, job: _Job, future: asyncio.Future[Any]) -> None:
        """Interrupts ``job`` until its thread is free; nobody awaits its result."""
        job.stop()
        future.add_done_callback(_discard_result)

        async def until_done() -> None:
            while not future.done():
                await asyncio.wait({future}, timeout=REINTERRUPT_S)
                job.stop()

        task = asyncio.get_running_loop().create_task(until_done())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _run_on(
        self,
        plan: QueryPlan,
        tables: dict[str, pa.Table],
        key: bytes,
        cursor: duckdb.DuckDBPyConnection,
    ) -> tuple[pa.Table, dict[str, int]]:
        registered: set[str] = set()

        def register(names: Iterable[str], among: dict[str, pa.Table]) -> None:
            # Only what a DuckDB statement reads: a registration costs about
            # as much as a small statement.
            for name in names:
                if name in among and name not in registered:
                    cursor.register(name, among[name])
                    registered.add(name)

        def in_duckdb(view: exp.Select, views: dict[str, pa.Table]) -> pa.Table:
            register(tables, tables)
            register(views, views)
            sql = bind_keyed_hash(view.copy(), key).sql(dialect="duckdb")
            return cursor.sql(sql).to_arrow_table()

        materialized = self._materialize(plan, tables, in_duckdb)
        assert materialized is not None  # every view has a way: DuckDB's
        views, visible = materialized
        readable = {**tables, **views}
        if plan.aggregate is not None:
            # The declining sources' partials are computed over the raw rows
            # and the views; the final aggregation reads their union.
            register(readable, readable)
            visible = self._partials(cursor, plan.aggregate, tables)
        else:
            answer = evaluate(plan.merge, readable)
            if answer is not None:  # a plain SELECT over one table: Arrow's
                self._check_size(answer.num_rows, answer.nbytes)
                return answer, visible
        register(_tables_named(plan.merge), readable)
        tree = bounded(plan.merge.copy(), self.limits.max_result_rows)
        return self._read(cursor, bind_keyed_hash(tree, key).sql(dialect="duckdb")), visible

    def _by_arrow(
        self, plan: QueryPlan, tables: dict[str, pa.Table]
    ) -> tuple[pa.Table, dict[str, int]] | None:
        """The whole merge by Arrow when each view and the merge are plain
        SELECTs (``broker.arrow_select``); None otherwise, or on any Arrow
        error (the merge thread's path then gives it its proper status)."""
        if plan.aggregate is not None:  # partials to compute: DuckDB's
            return None
        try:
            materialized = self._materialize(plan, tables, None)
            if materialized is None:
                return None
            views, visible = materialized
            answer = evaluate(plan.merge, {**tables, **views})
        except (pa.ArrowException, AccordError):
            return None
        if answer is None:
            return None
        self._check_size(answer.num_rows, answer.nbytes)
        return answer, visible

    def _check_size(self, rows: int, size: int) -> None:
        """ResourceExhausted past the answer's bounds in rows or bytes."""
        max_rows, max_bytes = self.limits.max_result_rows, self.limits.max_result_bytes
        if rows > max_rows:
            raise ResourceExhausted(
                f"the answer has more than {max_rows} rows (ACCORD_MAX_RESULT_ROWS); "
                "add a LIMIT or narrow the query"
            )
        if size > max_bytes:
            raise ResourceExhausted(
                f"the answer has more than {max_bytes} bytes (ACCORD_MAX_RESULT_BYTES); "
                "add a LIMIT or narrow the query"
            )

    def _read(self, cursor: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
        """The answer, batch by batch, stopped as soon as it passes a limit."""
        batches: list[pa.RecordBatch] = []
        rows = size = 0
        try:
            reader = cursor.sql(sql).to_arrow_reader(ipc.BATCH_ROWS)
            for batch in reader:
                rows, size = rows + batch.num_rows, size + batch.nbytes
                self._check_size(rows, size)
                batches.append(batch)
            schema = reader.schema
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            raise self._merge_error(exc) from None  # its text may quote a stored value
        return pa.Table.from_batches(batches, schema=schema)

    def _materialize(
        self,
        plan: QueryPlan,
        tables: dict[str, pa.Table],
        in_duckdb: Callable[[exp.Select, dict[str, pa.Table]], pa.Table] | None,
    ) -> tuple[dict[str, pa.Table], dict[str, int]] | None:
        """Computes each secure view; returns them by name, and the rows
        visible per source.

        A view that only selects and filters columns (no mask: the Crown
        attorney's, police's row filters) is computed by Arrow
        (``broker.arrow_select``), without DuckDB; any other by ``in_duckdb``
        (a statement over the raw tables and the views before it), or, with
        none given, the answer is None.
        A failure here (other than the deadline or the memory limit) is the
        policy's, a mask over stored data: the caller gets a generic error.
        """
        views: dict[str, pa.Table] = {}
        visible: dict[str, int] = {}
        for name, view in plan.views:
            try:
                table = evaluate(view, tables)
                if table is None:
                    if in_duckdb is None:
                        return None
                    table = in_duckdb(view, views)
            except (duckdb.Error, pa.ArrowException, OSError) as exc:
                error = self._merge_error(exc)
                if isinstance(error, InvalidQuery):
                    log.error("secure view %s failed: %s", name, error)
                    error = AccordError(
                        "the policy view of a table could not be computed; "
                        "the operators have the details"
                    )
                raise error from None
            views[name] = table
            _count_visible(visible, table)
        return views, visible

    def _partials(
        self,
        cursor: duckdb.DuckDBPyConnection,
        aggregate: AggregatePushdown,
        tables: dict[str, pa.Table],
    ) -> dict[str, int]:
        """Adds the partials of the sources that sent rows (computed here, with
        the same SQL) to those the sources computed; registers the union for
        the final aggregation. Visible rows per source: those a source's
        partial aggregated, or the rows it sent (as for rows: before the
        query's own WHERE applied here)."""
        raw = tables[aggregate.raw]
        pushed = tables.get(aggregate.partials)
        if pushed is None:  # no source asked (the rows only, as the in-process tests give)
            pushed = self._pushed_partials_of(aggregate, [])
        try:
            computed = cursor.sql(aggregate.partial.sql(dialect="duckdb")).to_arrow_table()
            computed = computed.select(pushed.schema.names).cast(pushed.schema)
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            raise self._merge_error(exc) from None
        cursor.register(aggregate.partials, pa.concat_tables([pushed, computed]))
        visible: dict[str, int] = {}
        for source, rows in zip(
            pushed.column(SOURCE_COLUMN).to_pylist(), pushed.column(ROWS).to_pylist(), strict=True
        ):
            visible[source] = visible.get(source, 0) + rows
        _count_visible(visible, raw)
        return visible

    def _merge_error(self, exc: Exception) -> AccordError:
        """DuckDB's failure as the caller may read it: its kind and a scrubbed
        message. Mid-stream, DuckDB's errors surface as Arrow errors whose
        text starts with the same kind (``Conversion Error: ...``)."""
        message = scrubbed(str(exc))
        kind = type(exc).__name__ if isinstance(exc, duckdb.Error) else _kind_of(message)
        log.info("merge failed: %s: %s", kind, message)
        if kind in {"InterruptException", "INTERRUPT"}:
            return QueryTimedOut(TIMED_OUT)
        if kind in {"OutOfMemoryException", "Out of Memory"}:
            return ResourceExhausted(
                f"the merge needed more than its {self.limits.merge_memory_mb} MB of memory "
                "(ACCORD_MERGE_MEMORY_MB); narrow the query"
            )
        if kind in {"ParserException", "Parser"}:  # sqlglot wrote a form DuckDB does not read
            return InvalidQuery(f"this form of query is not supported: {message}")
        if kind in {"InternalException", "FatalException", "INTERNAL", "FATAL"}:
            return AccordError(f"the merge failed ({kind}); the operators have the details")
        return InvalidQuery(f"the query failed while merging ({kind}): {message}")


class _Job:
    """One merge on a merge thread, with its cursor, stoppable from another thread."""

    def __init__(self, work: Callable[[duckdb.DuckDBPyConnection], Any]) -> None:
        self._work = work
        self._lock = threading.Lock()
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self._stopped = False

    def __call__(self, database: Callable[[], duckdb.DuckDBPyConnection]) -> Any:
        with self._lock:
            if self._stopped:  # its deadline passed while it waited for a thread
                raise QueryTimedOut(TIMED_OUT)
            cursor = self._cursor = database().cursor()
        try:
            return self._work(cursor)
        finally:
            with self._lock:
                self._cursor = None
            cursor.close()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._cursor is not None:
                self._cursor.interrupt()

    @property
    def running(self) -> bool:
        with self._lock:
            return self._cursor is not None


#: How long a closed merger keeps interrupting its merges.
STOP_WITHIN_S = 30.0


def _interrupt_until_ended(jobs: list[_Job]) -> None:
    """Interrupts ``jobs`` every REINTERRUPT_S until none runs (at most STOP_WITHIN_S)."""
    deadline = time.monotonic() + STOP_WITHIN_S
    while time.monotonic() < deadline:
        live = [job for job in jobs if job.running]
        if not live:
            return
        for job in live:
            job.stop()
        time.sleep(REINTERRUPT_S)  # DuckDB has no event to wait on for "stopped"


def _count_visible(visible: dict[str, int], view: pa.Table) -> None:
    """Adds a secure view's rows per source to ``visible``."""
    if view.num_rows:
        for entry in pc.value_counts(view.column(SOURCE_COLUMN)).to_pylist():
            visible[entry["values"]] = visible.get(entry["values"], 0) + entry["counts"]


def _tables_named(tree: exp.Expr) -> set[str]:
    return {t.name for t in tree.find_all(exp.Table)}


def bounded(tree: exp.Query, max_rows: int) -> exp.Query:
    """``tree`` with ``LIMIT max_rows + 1`` when it is a SELECT without one:
    one row past the bound is enough to know the answer is over it.

    >>> import sqlglot
    >>> bounded(sqlglot.parse_one("SELECT a FROM t ORDER BY a"), 10).sql()
    'SELECT a FROM t ORDER BY a LIMIT 11'
    >>> bounded(sqlglot.parse_one("SELECT a FROM t LIMIT 3"), 10).sql()
    'SELECT a FROM t LIMIT 3'
    """
    if isinstance(tree, exp.Select) and tree.args.get("limit") is None:
        return tree.limit(max_rows + 1, copy=False)
    return tree


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


def _kind_of(message: str) -> str:
    """``Conversion`` of ``Conversion Error: ...``; ``unknown`` without one."""
    head, sep, _ = message.partition(" Error: ")
    return head if sep and head.replace(" ", "").isalpha() else "unknown"


def _discard_result(future: asyncio.Future[Any]) -> None:
    """Reads the result of a merge nobody awaits (it was stopped), so asyncio
    does not report it as never retrieved."""
    with contextlib.suppress(BaseException):
        future.result()
