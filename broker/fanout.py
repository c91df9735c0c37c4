"""Fan out: concurrent Scan calls to the adapters over mutual TLS.

Each (table reference, source) pair is one Scan. Every scan gets the time
left before the query's deadline; a source that fails, times out or sends
data that does not match what was asked is reported per source, never
allowed to crash the broker or to slip wrong rows into the merge. Only the
source's own failures count against its circuit breaker (see broker.breaker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from accord import ipc, tls
from accord.errors import (
    AccordError,
    CircuitOpen,
    ResourceExhausted,
    ScanCancelled,
    SourceError,
    SourceRefused,
    SourceTimedOut,
    SourceUnavailable,
)
from accord.metadata import ADAPTER_ERROR_METADATA
from accord.partial import impossible, partial_schema
from accord.v1 import adapter_pb2, adapter_pb2_grpc
from broker.adapter_identity import AdapterVerifier
from broker.breaker import Breakers
from broker.scan_batch import ScanFailed

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa

    from accord.federation import Federation, LogicalTable
    from broker.adapter_identity import Revocations
    from broker.identity import Principal
    from broker.metrics import BrokerMetrics
    from broker.planner import ScanSpec, TableReference
    from broker.scan_batch import GroupMember, Ticket

log = logging.getLogger("accord.fanout")


@dataclass
class Budget:
    """What each source may still send for one query (rows and Arrow bytes)."""

    max_rows: int
    max_bytes: int
    rows: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)

    def charge(self, source: str, rows: int, size: int) -> None:
        self.rows[source] = self.rows.get(source, 0) + rows
        self.bytes[source] = self.bytes.get(source, 0) + size
        if self.rows[source] > self.max_rows:
            raise ResourceExhausted(
                f"source {source} sent more than {self.max_rows} rows for this query "
                "(ACCORD_MAX_SOURCE_ROWS); narrow the query"
            )
        if self.bytes[source] > self.max_bytes:
            raise ResourceExhausted(
                f"source {source} sent more than {self.max_bytes} bytes for this query "
                "(ACCORD_MAX_SOURCE_BYTES); narrow the query or select fewer columns"
            )


@dataclass
class ScanResult:
    source: str
    reference: TableReference
    spec: ScanSpec
    header: adapter_pb2.ScanHeader | None = None
    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    elapsed_ms: float = 0.0
    #: column -> stored values that did not fit and arrived as NULL (the scan's trailer)
    bad_values: dict[str, int] = field(default_factory=dict)
    trailer: bool = False
    known: frozenset[str] = frozenset()  # the logical table's columns
    #: The schema of the partial aggregate asked for (None: none asked).
    partial: pa.Schema | None = None
    error: SourceError | None = None
    exhausted: ResourceExhausted | None = None  # a per-query limit: the query fails

    @property
    def aggregated(self) -> bool:
        """Whether its batches are the partial aggregate asked for, not rows."""
        return self.header is not None and self.header.aggregated


#: Attempts at one scan: the first, and retries of transient failures.
MAX_ATTEMPTS = 3


@dataclass
class _Channel:
    """One source endpoint's channel, and whether the adapter behind it has
    been verified since the channel last (re)connected
    (``broker.adapter_identity``)."""

    channel: grpc.aio.Channel
    stub: adapter_pb2_grpc.AdapterStub
    crl_number: int  # of the revocation list in force when it was opened
    connections: int = 0  # times it became READY
    verified: int | None = None  # ``connections`` when last verified
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    watcher: asyncio.Task[None] | None = None


class AdapterClients:
    """One long-lived mTLS channel per source endpoint, shared by all queries,
    and one circuit breaker per source.

    Each channel dials its source under the source's identity, so the
    handshake refuses any other certificate; no scan goes out on a channel
    until the adapter behind it has been verified (revocation included)."""

    def __init__(
        self,
        federation: Federation,
        ca: Path,
        cert: Path,
        key: Path,
        breakers: Breakers | None = None,
        metrics: BrokerMetrics | None = None,
        revocations: Revocations | None = None,
    ) -> None:
        self.federation = federation
        self.breakers = breakers or Breakers()
        self.metrics = metrics
        self.ca = ca
        self.revocations = revocations
        self._credentials = tls.channel_credentials(ca, cert, key)
        self._verifier = AdapterVerifier(ca, cert, key, revocations, self._refused)
        self._channels: dict[tuple[str, str], _Channel] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    def endpoints(self, source: str) -> tuple[str, ...]:
        endpoints = self.federation.source(source).endpoints
        if not endpoints:
            raise SourceUnavailable(source, "no adapter endpoint is configured")
        return endpoints

    async def stub(
        self, source: str, endpoint: str, deadline: float
    ) -> adapter_pb2_grpc.AdapterStub:
        """The stub for one source endpoint, once its adapter is verified."""
        entry = self._channel(source, endpoint)
        if self._trusted(entry):
            return entry.stub
        async with entry.lock:  # one probe for all the scans waiting on it
            if not self._trusted(entry):
                connections = entry.connections
                await self._verifier.verify(
                    self.federation.source(source), endpoint, deadline - time.monotonic()
                )
                entry.verified = connections
                await _reconnected(entry.channel, deadline)
        return entry.stub

    def use_certificate(self, cert: Path, key: Path) -> None:
        """Present a new client certificate to adapters from the next scan on
        (a rotation): it is checked first (any error: the old one stays), new
        channels carry it, and scans in flight finish on the old channels."""
        credentials = tls.channel_credentials(self.ca, cert, key)
        verifier = AdapterVerifier(self.ca, cert, key, self.revocations, self._refused)
        self._credentials, self._verifier = credentials, verifier
        old, self._channels = self._channels, {}
        for entry in old.values():
            self._retire(entry, grace=RETIRE_GRACE_S)

    async def close(self) -> None:
        for entry in self._channels.values():
            self._retire(entry, grace=None)
        self._channels.clear()
        await asyncio.gather(*self._retiring, return_exceptions=True)

    def _channel(self, source: str, endpoint: str) -> _Channel:
        entry = self._channels.get((source, endpoint))
        number = self._crl_number()
        if entry is not None and entry.crl_number != number:
            # A new revocation list: new connections, so no scan rides on a
            # handshake made with a certificate revoked since.
            self._retire(entry, grace=RETIRE_GRACE_S)
            entry = None
        if entry is None:
            identity = self.federation.source(source).identity
            channel = grpc.aio.secure_channel(
                endpoint,
                self._credentials,
                options=[
                    *tls.CHANNEL_OPTIONS,
                    ("grpc.ssl_target_name_override", identity),
                    # Its own connections: a replacement channel must not
                    # share the one it replaces from gRPC's global pool.
                    ("grpc.use_local_subchannel_pool", 1),
                ],
            )
            entry = _Channel(channel, adapter_pb2_grpc.AdapterStub(channel), number)
            entry.watcher = asyncio.get_running_loop().create_task(
                _count_connections(entry), name=f"watch-{source}"
            )
            self._channels[(source, endpoint)] = entry
        return entry

    def _refused(self, source: str, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.adapter_refusals.labels(source, reason).inc()

    def _crl_number(self) -> int:
        # Its number grows with each publication (and noticing a new file is a stat).
        number = self.revocations.number if self.revocations is not None else None
        return number or 0

    @staticmethod
    def _trusted(entry: _Channel) -> bool:
        return (
            entry.verified == entry.connections
            and entry.channel.get_state() is grpc.ChannelConnectivity.READY
        )

    def _retire(self, entry: _Channel, grace: float | None) -> None:
        if entry.watcher is not None:
            entry.watcher.cancel()
        task = asyncio.get_running_loop().create_task(entry.channel.close(grace=grace))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)


#: Seconds scans in flight on a channel replaced by a rotation may still run.
RETIRE_GRACE_S = 60.0


#: Longest wait, after the adapter was verified, for a channel still in its
#: reconnect backoff (accord.tls.RECONNECT_MAX_MS, plus gRPC's jitter).
RECONNECT_WAIT_S = tls.RECONNECT_MAX_MS / 1000 * 1.2 + 0.1


async def _reconnected(channel: grpc.aio.Channel, deadline: float) -> None:
    """The adapter just answered a TLS probe, so it is up: a channel that
    is still waiting out its backoff from when it was down gets that long
    to connect, rather than failing the scan (a circuit's half-open probe
    would fail on it, and keep a returned source out another period)."""
    if channel.get_state(try_to_connect=True) is grpc.ChannelConnectivity.READY:
        return
    wait = min(RECONNECT_WAIT_S, deadline - time.monotonic())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(channel.channel_ready(), max(wait, 0.0))


async def _count_connections(entry: _Channel) -> None:
    """Counts each time the channel becomes READY: a reconnection may reach
    another server, so the adapter is verified again."""
    state = entry.channel.get_state()
    while True:
        await entry.channel.wait_for_state_change(state)
        state = entry.channel.get_state()
        if state is grpc.ChannelConnectivity.READY:
            entry.connections += 1


async def run_scans(
    clients: AdapterClients,
    references: list[TableReference],
    query_id: str,
    deadline: float,
    *,
    explain_only: bool = False,
    fail_fast: bool = False,
    budget: Budget | None = None,
    sink: asyncio.Queue[tuple[ScanResult, pa.RecordBatch]] | None = None,
    principal: Principal | None = None,
    member: GroupMember | None = None,
) -> list[ScanResult]:
    """Runs every scan of a plan concurrently; ``deadline`` is a monotonic time.

    Each scan names ``principal`` (partner, end user), on whose behalf it
    runs, for the adapter's own audit trail.

    With ``fail_fast`` (the query does not accept a partial answer) the first
    failed scan cancels the others: their gRPC calls end, and each adapter
    cancels its statement in its database. With a ``sink`` every batch goes
    there as it arrives (a bounded queue: a slow consumer slows the scans)
    instead of being kept in the results. With a ``member`` of a scan group
    (``broker.scan_batch``), each scan's first attempt goes in its source's
    batch with the other members' scans.
    """
    specs = [(ref, spec) for ref in references for spec in ref.scans]
    if member is not None and sink is None and not explain_only:
        tickets: list[Ticket | None] = list(member.arrive([spec.source for _, spec in specs]))
    else:
        tickets = [None] * len(specs)
    tasks = [
        asyncio.ensure_future(
            _scan(
                clients,
                ref,
                spec,
                query_id,
                deadline,
                explain_only,
                budget or Budget(2**62, 2**62),
                sink,
                principal,
                ticket,
            )
        )
        for (ref, spec), ticket in zip(specs, tickets, strict=True)
    ]
    try:
        pending = set(tasks)
        while pending and fail_fast:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            failed = next((t.result() for t in done if t.result().error is not None), None)
            if failed is not None:
                for task in pending:
                    task.cancel()
                break
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:  # the caller went away: stop every scan
            task.cancel()
    return [
        ScanResult(spec.source, ref, spec, error=ScanCancelled(spec.source, "cancelled"))
        if task.cancelled()
        else task.result()
        for task, (ref, spec) in zip(tasks, specs, strict=True)
    ]


async def _scan(
    clients: AdapterClients,
    ref: TableReference,
    spec: ScanSpec,
    query_id: str,
    deadline: float,
    explain_only: bool,
    budget: Budget,
    sink: asyncio.Queue[tuple[ScanResult, pa.RecordBatch]] | None = None,
    principal: Principal | None = None,
    ticket: Ticket | None = None,
) -> ScanResult:
    source = spec.source
    result = ScanResult(
        source=source,
        reference=ref,
        spec=spec,
        known=frozenset(clients.federation.tables[ref.table].columns),
    )
    started = time.monotonic()
    request = adapter_pb2.ScanRequest(
        table=ref.table,
        columns=spec.columns,
        predicate=spec.predicate,
        limit=spec.limit,
        explain_only=explain_only,
        query_id=query_id,
        partner=principal.partner.name if principal is not None else "",
        end_user=principal.end_user if principal is not None else "",
        aggregate=spec.aggregate.message() if spec.aggregate is not None else None,
    )
    logical = clients.federation.tables[ref.table]
    expected = logical.arrow_schema(spec.columns)
    result.partial = _partial_schema(logical, request)  # what the header may say instead
    breaker = clients.breakers[source]
    try:
        if not breaker.allow():
            raise CircuitOpen(
                source, "its circuit is open after repeated failures; it is asked again shortly"
            )
        await _attempts(clients, request, result, expected, deadline, budget, sink, ticket)
    except asyncio.CancelledError:
        result.error = ScanCancelled(source, "cancelled: another source failed first")
    except ResourceExhausted as exc:
        result.exhausted = exc
        result.error = SourceError(source, "stopped: a per-query limit was exceeded")
    except _Retryable as exc:
        result.error = exc.error
    except grpc.aio.AioRpcError as exc:
        result.error = _source_error(source, exc)
    except SourceError as exc:
        result.error = exc
    except AccordError as exc:
        result.error = SourceUnavailable(source, f"sent unusable data: {exc}")
    finally:
        if ticket is not None:
            ticket.settle()  # given up before its first attempt, or cancelled
    result.elapsed_ms = (time.monotonic() - started) * 1000
    if clients.metrics is not None and not explain_only:
        clients.metrics.scan_done(source, result.error, result.elapsed_ms / 1000)
        clients.metrics.bad_values_received(source, ref.table, result.bad_values)
    if result.error is not None:
        result.batches.clear()
    if not isinstance(result.error, CircuitOpen):  # else it was not asked
        # What the scan had, not what the caller wanted: a deadline too short
        # for the source to answer is no failure of the source.
        breaker.ended(result.error, deadline - started)
    return result


async def _attempts(
    clients: AdapterClients,
    request: adapter_pb2.ScanRequest,
    result: ScanResult,
    expected: pa.Schema,
    deadline: float,
    budget: Budget,
    sink: asyncio.Queue[tuple[ScanResult, pa.RecordBatch]] | None,
    ticket: Ticket | None,
) -> None:
    """The scan's first attempt (in its batch, with a ticket) and its retries."""
    source = result.source
    endpoints = clients.endpoints(source)
    retrying = AsyncRetrying(
        # Only what failed before any data arrived is replayed: never a
        # half-streamed scan, never a refusal.
        retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
        stop=stop_after_attempt(MAX_ATTEMPTS)
        | stop_after_delay(max(deadline - time.monotonic(), 0)),
        wait=wait_exponential_jitter(multiplier=0.05, max=0.5, jitter=0.05),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            number = attempt.retry_state.attempt_number
            endpoint = endpoints[(number - 1) % len(endpoints)]  # fail over to a replica
            batched = ticket if number == 1 else None  # retries go alone
            try:
                try:
                    stub = await clients.stub(source, endpoint, deadline)
                except SourceUnavailable as exc:  # before any scan went out: try a replica
                    raise _Retryable(exc) from exc
                await _attempt(stub, request, result, expected, deadline, budget, sink, batched)
            finally:
                if batched is not None:
                    batched.settle()  # its batch goes (or ends) without waiting for it


def _partial_schema(logical: LogicalTable, request: adapter_pb2.ScanRequest) -> pa.Schema | None:
    return partial_schema(logical, request.aggregate) if request.HasField("aggregate") else None


class _Retryable(Exception):
    """A transient failure before the scan's first message: worth another try."""

    def __init__(self, error: SourceError) -> None:
        super().__init__(str(error))
        self.error = error


async def _attempt(
    stub: adapter_pb2_grpc.AdapterStub,
    request: adapter_pb2.ScanRequest,
    result: ScanResult,
    expected: pa.Schema,
    deadline: float,
    budget: Budget,
    sink: asyncio.Queue[tuple[ScanResult, pa.RecordBatch]] | None,
    ticket: Ticket | None = None,
) -> None:
    source = result.source
    timeout = deadline - time.monotonic()
    if timeout <= 0:
        raise SourceTimedOut(source, "no time was left before the query's deadline")
    call: Any = (
        ticket.scan(stub, request, timeout)
        if ticket is not None
        else stub.Scan(request, timeout=timeout)
    )
    try:
        async for message in call:
            _receive(result, message, expected)
            if message.WhichOneof("payload") == "arrow_batch":
                budget.charge(result.source, result.batches[-1].num_rows, len(message.arrow_batch))
                if sink is not None:
                    await sink.put((result, result.batches.pop()))
    except (asyncio.CancelledError, ResourceExhausted):
        call.cancel()  # the adapter sees the cancellation and stops its statement
        raise
    except (grpc.aio.AioRpcError, ScanFailed) as exc:
        error = _source_error(source, exc)
        if result.header is None and (
            exc.code() == grpc.StatusCode.UNAVAILABLE
            # An adapter without ScanBatch: the scan is asked alone.
            or (isinstance(exc, grpc.aio.AioRpcError) and exc.code() == _NO_BATCH and ticket)
        ):
            raise _Retryable(error) from exc
        raise error from exc
    if result.header is None:
        raise SourceUnavailable(source, "the adapter sent no scan header")


def _receive(result: ScanResult, message: adapter_pb2.ScanResponse, expected: pa.Schema) -> None:
    kind = message.WhichOneof("payload")
    if kind == "header":
        if result.header is not None:
            raise SourceUnavailable(result.source, "the adapter sent two scan headers")
        schema = ipc.schema_from_bytes(message.header.arrow_schema)
        if message.header.aggregated:
            if result.partial is None:
                raise SourceUnavailable(result.source, "sent an aggregate it was not asked for")
            expected = result.partial
        if not schema.equals(expected):
            raise SourceUnavailable(
                result.source, f"answered with schema {schema} instead of {expected}"
            )
        result.header = message.header
    elif result.trailer:
        raise SourceUnavailable(result.source, "sent more after its scan trailer")
    elif kind == "trailer":
        if result.header is None:
            raise SourceUnavailable(result.source, "sent its scan trailer before its header")
        # Columns of the table only (the adapter also counts those its release
        # filter reads): the names become metric labels.
        counts = dict(message.trailer.bad_values)
        if not set(counts) <= set(result.known) or any(n < 0 for n in counts.values()):
            raise SourceUnavailable(result.source, "sent a scan trailer it should not have")
        result.bad_values = counts
        result.trailer = True
    elif kind == "arrow_batch":
        if result.header is None:
            raise SourceUnavailable(result.source, "sent data before its scan header")
        schema = result.partial if result.aggregated and result.partial is not None else expected
        batch = ipc.batch_from_bytes(message.arrow_batch, schema)
        _check_partial(result, batch)
        result.batches.append(batch)
        result.rows += batch.num_rows
        result.bytes += len(message.arrow_batch)
    else:
        raise SourceUnavailable(result.source, "sent an empty message")


def _check_partial(result: ScanResult, batch: pa.RecordBatch) -> None:
    """A partial aggregate no database could have computed fails the source."""
    if result.aggregated and result.spec.aggregate is not None:
        problem = impossible(batch, result.spec.aggregate.message())
        if problem is not None:
            raise SourceUnavailable(result.source, f"sent a partial aggregate with {problem}")


#: What a scan's gRPC status may say to a partner: the adapter's own words
#: (a release refusal, a predicate it cannot run, its database gone), scrubbed
#: of any address, for these codes when the adapter marked the error as its
#: own (ADAPTER_ERROR_METADATA); otherwise (gRPC core's connection errors, an
#: adapter's internal fault) a fixed sentence. Operators get the detail in the log.
_ADAPTER_WORDS = frozenset(
    {
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNAVAILABLE,
    }
)
#: An address as gRPC core or a database driver spells it: ipv4:1.2.3.4:5,
#: [::1]:5, unix:/path, host.name:5432, or a bare IPv4 address.
_ADDRESS = re.compile(
    r"(?:ipv4|ipv6|unix|unix-abstract):[^\s,;]*[^\s,;:]"
    r"|\[[0-9A-Fa-f:.]+\](?::\d+)?"
    r"|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"
    r"|\b[A-Za-z0-9][A-Za-z0-9.-]*:\d{2,5}\b"
)


def scrub(text: str) -> str:
    """``text`` with every network address replaced.

    >>> scrub("ipv4:127.0.0.1:51062: Failed to connect; db at 10.0.0.5 and pg.internal:5432")
    '<address>: Failed to connect; db at <address> and <address>'
    """
    return _ADDRESS.sub("<address>", text)


_NO_BATCH = grpc.StatusCode.UNIMPLEMENTED


def _source_error(source: str, exc: grpc.aio.AioRpcError | ScanFailed) -> SourceError:
    """The per-source error a partner may see for a failed scan call; the
    call's own details go to the log (tagged with the query id)."""
    code = exc.code()
    detail = exc.details() or code.name
    log.info("source %s: scan failed: %s: %s", source, code.name, detail)
    own = code in _ADAPTER_WORDS and _marked_by_adapter(exc)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return SourceTimedOut(source, "did not answer before the query's deadline")
    if code == grpc.StatusCode.UNAVAILABLE:
        said = scrub(detail) if own else "its adapter cannot be reached"
        return SourceUnavailable(source, f"unavailable: {said}")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return SourceRefused(source, f"refused: {scrub(detail) if own else 'the scan was refused'}")
    if own:
        return SourceError(source, f"{code.name}: {scrub(detail)}")
    return SourceError(source, f"{code.name}: the scan failed; the operators have the details")


def _marked_by_adapter(exc: grpc.aio.AioRpcError | ScanFailed) -> bool:
    # grpc.aio.Metadata at run time (pairs when iterated); the stubs say tuples.
    trailing: Any = exc.trailing_metadata() or ()
    return any(key == ADAPTER_ERROR_METADATA for key, _ in trailing)
