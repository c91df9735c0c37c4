"""The adapter: one gRPC server in front of one source system.

It accepts only the broker's certificate (``adapters.callers``), checks and
translates each Scan (``adapters.translate``) under the jurisdiction's
release agreement (``adapters.release``), runs it read-only on the backend
and streams logical Arrow batches. The servicer is thin; the work is
in plain functions that tests call without gRPC.

The server is synchronous on a thread pool: the database drivers block, and
a thread per scan keeps cancellation simple (``Backend.cancel``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections import Counter
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import pyarrow as pa
import pyarrow.compute as pc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlglot import exp

from accord import ipc, tls
from accord.errors import (
    AccordError,
    ConfigError,
    InvalidQuery,
    PolicyDenied,
    ScanCancelled,
    SourceError,
    SourceUnavailable,
    grpc_status,
)
from accord.logs import bind_query_id
from accord.metadata import ADAPTER_ERROR_METADATA
from accord.partial import ROWS, columns_used
from accord.predicate import parse_predicate
from accord.v1 import adapter_pb2, adapter_pb2_grpc
from adapters.aggregate import (
    MAX_CHECKED_DATES,
    DateCheck,
    Declined,
    PartialScan,
    canonical_dates,
    plan_partial,
)
from adapters.callers import CallerGate, read_certificates
from adapters.convert import column_converters, physical_types, to_logical, withheld
from adapters.dialects import RULES
from adapters.metrics import AdapterMetrics
from adapters.prefetch import prefetch
from adapters.release import check_release, release_conditions
from adapters.scan_plans import RowScan, ScanPlans
from adapters.translate import plan_scan

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path

    from accord.federation import Federation, LogicalTable, Release, Source
    from adapters.backends import Backend
    from adapters.callers import Revocations
    from adapters.trace import ScanTrace, TracedScan

log = logging.getLogger("accord.adapter")

SERVICE_NAME = adapter_pb2.DESCRIPTOR.services_by_name["Adapter"].full_name


class AdapterService(adapter_pb2_grpc.AdapterServicer):
    def __init__(
        self,
        federation: Federation,
        source: Source,
        backend: Backend,
        metrics: AdapterMetrics | None = None,
        trace: ScanTrace | None = None,
    ) -> None:
        self.federation = federation
        self.source = source
        self.backend = backend
        self.metrics = metrics or AdapterMetrics(source.code)
        self.trace = trace  # None: no trail (tests and benchmarks only)
        self.metrics.expect_columns({t: list(m.columns) for t, m in source.tables.items()})
        self._tokens = itertools.count()
        self.plans = ScanPlans(
            lambda name: (federation.tables[name], source.tables[name]), self.metrics.scan_planned
        )

    def Describe(
        self, request: adapter_pb2.DescribeRequest, context: grpc.ServicerContext
    ) -> adapter_pb2.DescribeResponse:
        return describe(self.federation, self.source)

    def Scan(
        self, request: adapter_pb2.ScanRequest, context: grpc.ServicerContext
    ) -> Iterator[adapter_pb2.ScanResponse]:
        with bind_query_id(request.query_id):
            try:
                # The access record is durable before the header leaves.
                with self._traced(request, context) as traced:
                    scanned = self._scan(request, context, traced.count if traced else None)
                    yield from self.metrics.observe(request.table, scanned)
            except ScanCancelled:
                return  # the broker cancelled: the database statement was cancelled too
            except AccordError as exc:
                status, message = grpc_status(exc)
                log.warning("scan of %s failed: %s", request.table, message)
                context.set_trailing_metadata(((ADAPTER_ERROR_METADATA, "1"),))
                context.abort(status, message)

    def ScanBatch(
        self, request: adapter_pb2.ScanBatchRequest, context: grpc.ServicerContext
    ) -> Iterator[adapter_pb2.ScanBatchResponse]:
        """Each scan as Scan runs it, one after another, its messages tagged
        with its index; a scan that fails sends its error and the next runs.
        Every access is recorded (one write) before the first header."""
        scans = list(request.scans)
        if not 1 <= len(scans) <= MAX_BATCH_SCANS:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"a scan batch holds 1 to {MAX_BATCH_SCANS} scans, not {len(scans)}",
            )
        try:
            traced = self.trace.scans(scans, context) if self.trace is not None else None
        except AccordError as exc:
            status, refusal = grpc_status(exc)
            context.set_trailing_metadata(((ADAPTER_ERROR_METADATA, "1"),))
            context.abort(status, refusal)
        ends: list[dict[str, Any]] = []  # one per scan reached, in order
        try:
            yield from packed(self._batch_items(scans, traced, ends, context))
        finally:
            if self.trace is not None and traced is not None:
                # The scans the batch never reached ended with it.
                never = ScanCancelled(self.source.code, "the batch ended first")
                self.trace.ended(ends + [t.end(never) for t in traced[len(ends) :]])

    def _batch_items(
        self,
        scans: list[adapter_pb2.ScanRequest],
        traced: list[TracedScan] | None,
        ends: list[dict[str, Any]],
        context: grpc.ServicerContext,
    ) -> Iterator[adapter_pb2.ScanBatchItem]:
        """The batch's scans in order, each one's end record added to ``ends``."""

        def ended(one: TracedScan | None, exc: BaseException | None) -> None:
            if one is not None:
                ends.append(one.end(exc))

        for index, scan_request in enumerate(scans):
            one = traced[index] if traced is not None else None
            if one is not None:
                one.begin()
            with bind_query_id(scan_request.query_id):
                try:
                    scanned = self._scan(scan_request, context, one.count if one else None)
                    for message in self.metrics.observe(scan_request.table, scanned):
                        yield adapter_pb2.ScanBatchItem(scan=index, response=message)
                except ScanCancelled as exc:
                    ended(one, exc)
                    return  # the broker cancelled: the statement was cancelled too
                except AccordError as exc:
                    ended(one, exc)
                    status, text = grpc_status(exc)
                    log.warning("scan of %s failed: %s", scan_request.table, text)
                    error = adapter_pb2.ScanError(code=status.value[0], message=text)
                    yield adapter_pb2.ScanBatchItem(scan=index, error=error)
                    continue
                except BaseException as exc:  # the call ended under us (GeneratorExit)
                    ended(one, exc)
                    raise
            ended(one, None)

    def _traced(
        self, request: adapter_pb2.ScanRequest, context: grpc.ServicerContext
    ) -> contextlib.AbstractContextManager[TracedScan | None]:
        if self.trace is None:
            return contextlib.nullcontext()
        return self.trace.scan(request, context)

    def _scan(
        self,
        request: adapter_pb2.ScanRequest,
        context: grpc.ServicerContext,
        on_rows: Callable[[int], None] | None = None,
    ) -> Iterator[adapter_pb2.ScanResponse]:
        token = f"{request.query_id}:{next(self._tokens)}"
        finished = threading.Event()

        # Runs when the call ends for any reason; only a call ended early
        # (the broker cancelled, or its deadline passed) cancels the statement.
        def ended() -> None:
            if not finished.is_set():
                self.backend.cancel(token)

        context.add_callback(ended)
        started, rows = time.monotonic(), 0
        bad: dict[str, int] = {}

        def counted(n: int) -> None:
            nonlocal rows
            rows += n
            self.metrics.count_rows(request.table, n)
            if on_rows is not None:
                on_rows(n)

        try:
            for message in scan(
                self.federation,
                self.source,
                self.backend,
                request,
                token,
                timeout_s=context.time_remaining(),
                on_rows=counted,
                plans=self.plans,
            ):
                if message.WhichOneof("payload") == "trailer":
                    bad = dict(message.trailer.bad_values)
                yield message
            finished.set()
        except AccordError as exc:
            finished.set()
            if not context.is_active():
                raise ScanCancelled(self.source.code, "the broker cancelled the scan") from exc
            raise
        log.info(
            "scan of %s: %d rows in %.1f ms",
            request.table,
            rows,
            (time.monotonic() - started) * 1000,
        )
        if bad:
            # Table, column and count only: the stored values stay in the database.
            log.warning(
                "scan of %s: %d stored values did not fit the logical model and were sent "
                "as NULL (or withheld their row): %s",
                request.table,
                sum(bad.values()),
                ", ".join(f"{column}={n}" for column, n in sorted(bad.items())),
            )


def describe(federation: Federation, source: Source) -> adapter_pb2.DescribeResponse:
    return adapter_pb2.DescribeResponse(
        source=source.code,
        jurisdiction=source.jurisdiction,
        system_name=source.system,
        tables=[
            adapter_pb2.TableDescription(
                name=name,
                arrow_schema=ipc.schema_to_bytes(federation.tables[name].arrow_schema()),
            )
            for name in source.tables
        ],
    )


def scan(
    federation: Federation,
    source: Source,
    backend: Backend,
    request: adapter_pb2.ScanRequest,
    token: str,
    timeout_s: float | None = None,
    on_rows: Callable[[int], None] | None = None,
    plans: ScanPlans | None = None,
) -> Iterator[adapter_pb2.ScanResponse]:
    """The stream of one Scan: a header, one message per Arrow batch, a trailer.
    With ``plans``, a repeated shape is planned from its template
    (``adapters.scan_plans``).

    A stored value that does not fit the logical model is sent as NULL and
    counted in the trailer. The database applied the release filter to the
    stored value, not to the NULL the broker sees; a row with such a value in
    a column of the release filter is withheld (and counted), so a bad value
    can never let a row through that the filter would have withheld. Pushed
    predicates judge a bad value as the NULL it reads as where SQL can tell
    (``adapters.translate``), only narrow the scan where it cannot, and the
    broker applies every one of them again to the logical values.
    """
    mapping = source.tables.get(request.table)
    release = source.release.get(request.table)
    if mapping is None or release is None:
        raise PolicyDenied(
            f"source {source.code} does not release table {request.table!r}", reason="table"
        )
    table = federation.tables[request.table]
    asked = request.HasField("aggregate")

    def build(predicate: str) -> RowScan:
        return row_scan(federation, source, backend.dialect, request, predicate)

    planned = (
        plans.plan(request, build) if plans is not None and not asked else build(request.predicate)
    )
    physical, columns, guarded = planned.physical, planned.columns, planned.guarded
    schema = planned.schema
    partial: PartialScan | None = None
    declined = ""
    if asked:
        try:
            partial = plan_partial(
                table, mapping, RULES[backend.dialect], request.aggregate, physical, guarded
            )
            if not request.explain_only:
                for check in partial.checks:
                    _check_dates(backend, check, token, timeout_s)
            schema = partial.schema
        except Declined as exc:
            partial, declined = None, str(exc)
    yield adapter_pb2.ScanResponse(
        header=adapter_pb2.ScanHeader(
            source=source.code,
            arrow_schema=ipc.schema_to_bytes(schema),
            physical_sql=partial.sql if partial is not None else physical.sql,
            pushed_predicates=physical.pushed,
            residual_predicates=physical.residual,
            superset_predicates=physical.superset,
            limit_pushed=physical.limit_pushed,
            dialect=physical.dialect,
            aggregated=partial is not None,
            aggregate_declined=declined,
        )
    )
    if request.explain_only:
        return
    if partial is not None:
        yield from _aggregated(source, backend, partial, token, timeout_s, on_rows)
        return
    converters, fetched_schema = planned.converters, planned.fetched_schema
    bad: Counter[str] = Counter()
    batches = backend.execute(
        physical.sql,
        physical.params,
        planned.stored,
        batch_rows=ipc.BATCH_ROWS,
        token=token,
        timeout_s=timeout_s,
    )
    for batch in prefetch(batches, name=f"read-{token}", read_ahead=_full):
        converted = to_logical(batch, fetched_schema, converters)
        bad.update(converted.counts())
        logical = withheld(converted, guarded).select(range(len(columns)))
        for piece in sized(logical):
            if on_rows is not None:
                on_rows(piece.num_rows)
            yield adapter_pb2.ScanResponse(arrow_batch=ipc.batch_to_bytes(piece))
    yield adapter_pb2.ScanResponse(trailer=adapter_pb2.ScanTrailer(bad_values=dict(bad)))


def row_scan(
    federation: Federation,
    source: Source,
    dialect: str,
    request: adapter_pb2.ScanRequest,
    predicate: str,
) -> RowScan:
    """The plan of ``request`` with ``predicate``: what it may read (refused
    otherwise), the physical statement, and how its rows become logical ones."""
    table = federation.tables[request.table]
    mapping, release = source.tables[request.table], source.release[request.table]
    columns = list(request.columns)
    aggregated = columns_used(table, request.aggregate) if request.HasField("aggregate") else []
    check_released(source.code, table, release, columns + aggregated, predicate)
    guarded = _filter_columns(table, release.row_filter)
    fetched = columns + [c for c in guarded if c not in columns]
    physical = plan_scan(
        table,
        mapping,
        fetched,
        predicate,
        request.limit,
        dialect,
        release.row_filter,
        release_conditions(federation, source, request.table, dialect),
    )
    return RowScan(
        physical=physical,
        columns=columns,
        fetched=fetched,
        guarded=guarded,
        schema=table.arrow_schema(columns),
        fetched_schema=table.arrow_schema(fetched),
        converters=column_converters(table, mapping, fetched),
        stored=physical_types(table, mapping, fetched, RULES[dialect].native_dates),
    )


def _full(batch: pa.RecordBatch) -> bool:
    """A whole batch was read: more may follow, so the rest is read ahead."""
    return bool(batch.num_rows >= ipc.BATCH_ROWS)


def _aggregated(
    source: Source,
    backend: Backend,
    partial: PartialScan,
    token: str,
    timeout_s: float | None,
    on_rows: Callable[[int], None] | None,
) -> Iterator[adapter_pb2.ScanResponse]:
    """The partial aggregate's groups. A value that does not fit its type
    fails the scan: a NULL there would be a wrong sum, not a missing one."""
    batches = backend.execute(
        partial.sql,
        partial.params,
        partial.types,
        batch_rows=ipc.BATCH_ROWS,
        token=token,
        timeout_s=timeout_s,
    )
    for batch in prefetch(batches, name=f"read-{token}", read_ahead=_full):
        converted = to_logical(batch, partial.schema, partial.converters)
        # An unknown stored code is a NULL group, as its rows would be NULL;
        # anything else that does not fit would make a wrong sum.
        if set(converted.bad) - set(partial.schema.names[: partial.coded]):
            raise SourceError(source.code, "a partial aggregate did not fit its type")
        # Without GROUP BY the database answers one row even over none: not
        # sent, so a source with no matching row sends nothing, as with rows.
        groups = converted.batch.filter(pc.greater(converted.batch.column(ROWS), 0))
        for piece in sized(groups):
            if on_rows is not None:
                on_rows(piece.num_rows)
            yield adapter_pb2.ScanResponse(arrow_batch=ipc.batch_to_bytes(piece))
    yield adapter_pb2.ScanResponse(trailer=adapter_pb2.ScanTrailer())


def _check_dates(backend: Backend, check: DateCheck, token: str, timeout_s: float | None) -> None:
    """Declined unless every stored text of the check's column is a date as
    its format prints it (adapters.aggregate). A pass is remembered while
    the backend's data version stays (read before the check runs)."""
    version = backend.version()
    if version is not None and backend.checked.get(check.sql) == version:
        return
    seen = 0
    for batch in backend.execute(
        check.sql,
        check.params,
        [pa.string()],
        batch_rows=ipc.BATCH_ROWS,
        token=token,  # cancelled with the scan
        timeout_s=timeout_s,
    ):
        seen += batch.num_rows
        texts = batch.column(0)
        if seen > MAX_CHECKED_DATES or not pa.types.is_string(texts.type):
            raise Declined("too many distinct stored dates to check")
        if not canonical_dates(texts, check.date_format):
            raise Declined("some stored dates are not as their format prints them")
    if version is not None:
        if len(backend.checked) >= MAX_REMEMBERED_CHECKS:
            backend.checked.clear()
        backend.checked[check.sql] = version


#: Most scans one ScanBatch call may carry (a history asks six tables).
MAX_BATCH_SCANS = 64
#: A batch's items go out together until they hold about this many bytes,
#: or the oldest of them has waited this long (a slow scan after quick ones).
PACKED_BYTES = 1 << 20
PACKED_WAIT_S = 0.02


def packed(items: Iterable[adapter_pb2.ScanBatchItem]) -> Iterator[adapter_pb2.ScanBatchResponse]:
    """Items in as few messages as ``PACKED_BYTES`` and ``PACKED_WAIT_S`` allow."""
    pending: list[adapter_pb2.ScanBatchItem] = []
    size, oldest = 0, 0.0
    for item in items:
        if not pending:
            oldest = time.monotonic()
        pending.append(item)
        size += item.ByteSize()
        if size >= PACKED_BYTES or time.monotonic() - oldest >= PACKED_WAIT_S:
            yield adapter_pb2.ScanBatchResponse(items=pending)
            pending, size = [], 0
    if pending:
        yield adapter_pb2.ScanBatchResponse(items=pending)


#: Date checks remembered per backend (each a statement and a version).
MAX_REMEMBERED_CHECKS = 1024


#: Bytes of Arrow data per message. ``ipc.BATCH_ROWS`` rows of long text
#: (conditions, summaries) can pass the broker's 16 MiB receive limit: a wider
#: batch goes as several messages, each about this size.
MAX_BATCH_BYTES = 4 << 20


def sized(batch: pa.RecordBatch, limit: int = MAX_BATCH_BYTES) -> Iterator[pa.RecordBatch]:
    """The batch as zero-copy slices of about ``limit`` bytes each."""
    if batch.nbytes <= limit or batch.num_rows <= 1:
        yield batch
        return
    step = max(batch.num_rows * limit // batch.nbytes, 1)
    for offset in range(0, batch.num_rows, step):
        yield batch.slice(offset, step)


def _filter_columns(table: LogicalTable, row_filter: str | None) -> list[str]:
    """The columns a release filter reads, in the table's order."""
    try:
        tree = parse_predicate(row_filter or "", table)
    except InvalidQuery as exc:  # the agreement is wrong, not the broker's scan
        raise ConfigError(f"release filter of {table.name}: {exc}") from exc
    named = {c.name for c in tree.find_all(exp.Column)} if tree is not None else set()
    return [c for c in table.columns if c in named]


def check_released(
    source: str, table: LogicalTable, release: Release, columns: list[str], predicate: str
) -> None:
    """Every column asked for or filtered on must be one the jurisdiction shares."""
    tree = parse_predicate(predicate, table)
    filtered = {c.name for c in tree.find_all(exp.Column)} if tree is not None else set()
    for column in [*columns, *sorted(filtered)]:
        if column in table.columns and column not in release.columns:
            raise PolicyDenied(
                f"source {source} does not release column {column!r} of {table.name}",
                reason="column",
            )


def refusal_recorder(
    trace: ScanTrace,
) -> Callable[[str, Any, grpc.ServicerContext, grpc.StatusCode], None]:
    """Records a refused Scan or Describe in the adapter's trail."""

    def record(method: str, request: Any, context: grpc.ServicerContext, code: Any) -> None:
        scan = request if isinstance(request, adapter_pb2.ScanRequest) else None
        trace.refused(scan or adapter_pb2.ScanRequest(), context, outcome=code.name)

    return record


@dataclass
class RunningAdapter:
    """A started adapter server and what ``accord serve adapter`` reloads on SIGHUP."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    credentials: tls.ReloadableServerCredentials
    gate: CallerGate


def create_server(
    federation: Federation,
    source: Source,
    backend: Backend,
    *,
    ca: Path,
    cert: Path,
    key: Path,
    broker_certs: Iterable[Path],
    revocations: Revocations | None = None,
    address: str = "127.0.0.1:0",
    max_workers: int = 16,
    metrics: AdapterMetrics | None = None,
    trace: ScanTrace | None = None,
) -> RunningAdapter:
    """Builds and starts an adapter server that serves only the broker: its
    ``broker_identities``, pinned to the certificates in ``broker_certs``
    (and health to the operator), checked per call (``adapters.callers``);
    a refused Scan is a record in ``trace``.

    An agreement the source's database cannot apply exactly stops it here
    (ConfigError), before it listens: it never serves a relaxed one."""
    check_release(federation, source, backend.dialect)
    metrics = metrics or AdapterMetrics(source.code)
    credentials = tls.ReloadableServerCredentials(ca, cert, key)
    gate = CallerGate(
        source.code,
        SERVICE_NAME,
        federation.broker_identities,
        read_certificates(broker_certs),
        revocations,
        metrics,
        on_refused=None if trace is None else refusal_recorder(trace),
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="scan"),
        options=tls.SERVER_OPTIONS,
        interceptors=[gate],
    )
    adapter_pb2_grpc.add_AdapterServicer_to_server(
        AdapterService(federation, source, backend, metrics, trace), server
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_secure_port(address, credentials.credentials)
    if port == 0:
        raise SourceUnavailable(source.code, f"cannot listen on {address}")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningAdapter(server, port, health_servicer, credentials, gate)
