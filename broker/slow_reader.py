"""A client that stops reading does not hold its answer for the whole deadline.

How grpc.aio pushes back (grpcio 1.85, measured with
``bench/partner_flood.py --slow-readers``): the servicer's ``yield`` hands
the message to ``ServicerContext.write``, whose send completes once HTTP/2
flow control lets the bytes out. A client that stops reading lets the
first ~10 MB through (its windows and the sockets' buffers), then the next
``yield`` does not return until the client reads, the client cancels, or
the deadline passes. So the generator, and whatever answer it holds (a
merged table, the read-ahead batches of a streamed one), stays pinned.

:func:`bounded_writes` bounds each write in time: if the ``yield`` has not
returned within ``ACCORD_SLOW_READER_S``, the answer is given up. Its
``on_slow`` callback runs at once (the servicer audits and counts the
query there, since the generator itself is suspended in grpc and cannot),
then the call's task is cancelled, which releases the generator and every
byte it holds. grpc.aio has no server-side cancel of one call: the
transport keeps the stalled stream (and the message it could not send)
until the client's deadline or disconnect; the broker's own memory is
freed at the bound. Each message's bytes count in the partner's bytes in
flight (:class:`broker.quota.Ticket`) while gRPC holds them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from accord import ipc
from accord.errors import SlowReader

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import pyarrow as pa

    from accord.v1 import broker_pb2
    from broker.quota import Ticket


async def bounded_writes(
    messages: AsyncIterator[broker_pb2.QueryResponse],
    ticket: Ticket,
    bound_s: float,
    on_slow: Callable[[SlowReader], None],
) -> AsyncIterator[broker_pb2.QueryResponse]:
    """``messages``, each write bounded by ``bound_s`` (see the module docstring)."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    schema: pa.Schema | None = None
    rows = 0

    def too_slow() -> None:
        on_slow(
            SlowReader(
                f"the client read too slowly: a write waited {bound_s:g} s "
                f"(ACCORD_SLOW_READER_S) after {rows} rows; the answer was cancelled",
                rows,
            )
        )
        ticket.close()  # the bytes and the slot are free now, not when grpc lets go
        if task is not None:
            task.cancel()

    async for message in messages:
        kind = message.WhichOneof("payload")
        size = len(message.arrow_batch) if kind == "arrow_batch" else 0
        ticket.hold(size)
        timer = loop.call_later(bound_s, too_slow)
        try:
            yield message
        finally:
            timer.cancel()
        ticket.release(size)
        if kind == "header":
            schema = ipc.schema_from_bytes(message.header.arrow_schema)
        elif kind == "arrow_batch":
            rows += ipc.batch_from_bytes(message.arrow_batch, schema).num_rows
