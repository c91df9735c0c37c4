"""A client that stops reading does not hold its answer for the whole deadline.

How grpc.aio pushes back (grpcio 1.85, measured with
``bench/partner_flood.py --slow-readers``): ``ServicerContext.write``
completes once HTTP/2 flow control lets the bytes out. A client that stops
reading lets the first ~10 MB through (its windows and the sockets'
buffers); then the next write does not return until the client reads,
cancels, or the deadline passes, and whatever answer the call holds (a
merged table, the read-ahead batches of a streamed one) stays pinned.

:func:`write_bounded` bounds each write in time: a write that has not
completed within ``ACCORD_SLOW_READER_S`` raises :class:`SlowReader`, and
the servicer records the query and ends the call, which releases every byte
the broker holds for it. grpc.aio has no server-side cancel of one stream:
the transport keeps the stalled stream (and the message it could not send)
until the client's deadline or disconnect. Each message's bytes count in
the partner's bytes in flight (:class:`broker.quota.Ticket`) while gRPC
holds them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from accord.errors import SlowReader

if TYPE_CHECKING:
    import grpc
    from google.protobuf.message import Message

    from broker.quota import Ticket


async def write_bounded(
    context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    message: Message,
    ticket: Ticket,
    bound_s: float,
    rows_sent: int,
    size: int = 0,
) -> None:
    """Writes ``message`` (holding ``size`` bytes of Arrow data) to the
    client, or raises :class:`SlowReader` if the client has not taken it
    within ``bound_s``; ``rows_sent`` is for the record."""
    ticket.hold(size)
    try:
        # asyncio.timeout, not wait_for: the write stays in the call's own
        # task, so a client's cancel arriving as the write fails is not lost.
        async with asyncio.timeout(bound_s):
            await context.write(message)
    except TimeoutError:
        raise SlowReader(
            f"the client read too slowly: a write waited {bound_s:g} s "
            f"(ACCORD_SLOW_READER_S) after {rows_sent} rows; the answer was cancelled",
            rows_sent,
        ) from None
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # grpc fails a pending write when the call ends under it (the client
        # cancelled or went away, its deadline passed) and may say so before
        # it cancels the task: the same end as a cancel.
        raise asyncio.CancelledError("the call ended during a write") from exc
    finally:
        ticket.release(size)
