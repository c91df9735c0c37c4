"""Several queries' scans of one source in one ``ScanBatch`` call.

A history is six or so small queries asked together, each scanning all six
sources: 36 Scan calls, each paying a gRPC call, a thread and two trail
writes at the adapter, for a few rows each. A :class:`ScanGroup` gathers the
first attempt of each scan its member queries make and sends each source's
as one ``ScanBatch`` call once every member has said which scans it makes
(``GroupMember.arrive``) and each of those scans is either asked or given
up (``Ticket.settle``: a circuit open, the adapter unverified, cancelled).

What each scan receives is exactly what its own Scan call would have
(``broker.fanout`` checks it the same way): the batch's messages are routed
by their index, a scan's stream ends at its error or when the next scan
starts, and an error of the whole call ends every scan still open with it.
Retries go out as plain Scan calls. A scan whose consumer stops early is
dropped from the batch (its messages are read and discarded); the call is
cancelled once no scan of it is wanted.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from accord.errors import SourceUnavailable
from accord.metadata import ADAPTER_ERROR_METADATA
from accord.v1 import adapter_pb2

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from accord.v1 import adapter_pb2_grpc

log = logging.getLogger("accord.fanout")

#: Messages queued for one scan before the batch's reader waits for it.
QUEUE_MESSAGES = 16
_END = object()  # a scan's stream ended in full


class ScanFailed(Exception):
    """One scan of a batch failed at the adapter, as an AioRpcError would
    say it (``code``, ``details``, marked as the adapter's own words)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((ADAPTER_ERROR_METADATA, "1"),)


_CODES = {code.value[0]: code for code in grpc.StatusCode}


class ScanGroup:
    """The queries asked together (``members`` of them) whose scans are batched."""

    def __init__(self, members: int) -> None:
        self.waiting = members
        self._sources: dict[str, _SourceBatch] = {}

    def member(self) -> GroupMember:
        return GroupMember(self)

    def _arrived(self, sources: list[str]) -> list[Ticket]:
        tickets = []
        for source in sources:
            batch = self._sources.setdefault(source, _SourceBatch(source))
            ticket = Ticket(batch)
            batch.tickets.append(ticket)
            tickets.append(ticket)
        self.waiting -= 1
        if self.waiting == 0:
            for batch in self._sources.values():
                batch.flush_if_ready(complete=True)
        return tickets


class GroupMember:
    """One query of a group: it arrives once, with its scans or with none."""

    def __init__(self, group: ScanGroup) -> None:
        self.group = group
        self.arrived = False

    def arrive(self, sources: list[str]) -> list[Ticket]:
        """One ticket per scan, in order, for the query's scans of ``sources``."""
        if self.arrived:
            raise RuntimeError("a group member arrives once")
        self.arrived = True
        return self.group._arrived(sources)

    def leave(self) -> None:
        """The query is over: if it never reached its scans, it has none."""
        if not self.arrived:
            self.arrive([])


@dataclass(eq=False)
class Ticket:
    """One scan's place in its source's batch, and the messages routed to it."""

    batch: _SourceBatch
    request: adapter_pb2.ScanRequest | None = None
    stub: adapter_pb2_grpc.AdapterStub | None = None
    timeout: float = 0.0
    settled: bool = False  # asked and done with, or never to be asked
    finished: bool = False  # its stream ended
    items: collections.deque[Any] = field(default_factory=collections.deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def unused(self) -> bool:
        return self.request is None and not self.settled

    @property
    def open(self) -> bool:
        return not (self.settled or self.finished)

    def scan(
        self, stub: adapter_pb2_grpc.AdapterStub, request: adapter_pb2.ScanRequest, timeout: float
    ) -> BatchedScan:
        """Asks the scan in the batch; the messages come as a Scan call's would."""
        self.request, self.stub, self.timeout = request, stub, timeout
        self.batch.flush_if_ready()
        return BatchedScan(self)

    def settle(self) -> None:
        """The scan is done with (ended, failed, cancelled or never asked):
        nothing more of it is read, and the batch may go without it."""
        if self.settled:
            return
        self.settled = True
        self.items.clear()
        self.room.set()  # a reader waiting for room goes on
        self.batch.flush_if_ready()
        self.batch.cancel_if_unwanted()

    async def deliver(self, message: adapter_pb2.ScanResponse) -> None:
        """Queues a message, waiting while the scan's reader is behind."""
        if not self.open:
            return
        self.items.append(message)
        self.ready.set()
        while len(self.items) >= QUEUE_MESSAGES and self.open:
            self.room.clear()
            await self.room.wait()

    def end(self, error: BaseException | None = None) -> None:
        """Ends the scan's stream, in full or with ``error``."""
        if self.open:
            self.finished = True
            self.items.append(_END if error is None else error)
            self.ready.set()


class BatchedScan:
    """A scan's messages from its batch, with a call's ``cancel``."""

    def __init__(self, ticket: Ticket) -> None:
        self.ticket = ticket

    def cancel(self) -> None:
        self.ticket.settle()

    async def __aiter__(self) -> AsyncIterator[adapter_pb2.ScanResponse]:
        ticket = self.ticket
        while True:
            while not ticket.items:
                ticket.ready.clear()
                await ticket.ready.wait()
            item = ticket.items.popleft()
            ticket.room.set()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class _SourceBatch:
    """The tickets of one source, and the one call that carries them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tickets: list[Ticket] = []
        self.complete = False  # every member arrived
        self.call: Any = None
        self.reader: asyncio.Task[None] | None = None

    def flush_if_ready(self, complete: bool = False) -> None:
        self.complete = self.complete or complete
        if not self.complete or self.reader is not None:
            return
        if any(t.unused for t in self.tickets):
            return  # a scan of a member is still on its way
        asked = [t for t in self.tickets if t.request is not None and not t.settled]
        if not asked:
            return
        stub = asked[0].stub
        assert stub is not None
        requests = [t.request for t in asked if t.request is not None]
        self.call = stub.ScanBatch(
            adapter_pb2.ScanBatchRequest(scans=requests),
            timeout=max(t.timeout for t in asked),
        )
        self.reader = asyncio.get_running_loop().create_task(
            self._read(asked), name=f"scan-batch-{self.source}"
        )

    def cancel_if_unwanted(self) -> None:
        """Cancels the call while it runs if none of its scans is wanted."""
        running = self.reader is not None and not self.reader.done()
        if running and not any(t.open for t in self.tickets):
            self.call.cancel()

    async def _read(self, asked: list[Ticket]) -> None:
        """Routes the call's messages to their scans, in the order the
        adapter runs them; whatever ends the call ends the scans still open."""
        current = 0  # scans before it have ended
        ending: BaseException | None = None
        try:
            async for response in self.call:
                if not response.items:
                    raise SourceUnavailable(self.source, "sent an empty batch message")
                for item in response.items:
                    current = await self._route(item, asked, current)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED or any(t.open for t in asked):
                ending = exc
        except SourceUnavailable as exc:
            self.call.cancel()
            ending = exc
        except asyncio.CancelledError:
            self.call.cancel()
            raise
        finally:
            for ticket in asked[current:]:
                ticket.end(ending)

    async def _route(
        self, message: adapter_pb2.ScanBatchItem, asked: list[Ticket], current: int
    ) -> int:
        """Gives ``message`` to its scan; the index of the first scan still open."""
        index = message.scan
        if index < current or index >= len(asked):
            raise SourceUnavailable(self.source, "sent a scan batch out of order")
        for earlier in asked[current:index]:
            earlier.end()  # the adapter went on to the next scan
        ticket = asked[index]
        kind = message.WhichOneof("payload")
        if kind == "error":
            ticket.end(
                ScanFailed(
                    _CODES.get(message.error.code, grpc.StatusCode.UNKNOWN), message.error.message
                )
            )
            return index + 1
        if kind != "response":
            raise SourceUnavailable(self.source, "sent an empty batch item")
        await ticket.deliver(message.response)
        if message.response.WhichOneof("payload") == "trailer":
            ticket.end()
            return index + 1
        return index
