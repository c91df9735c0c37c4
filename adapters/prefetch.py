"""Reading ahead: the database read of a scan runs in its own thread while
the scan's thread converts and sends the batches already read.

Arrow's parsers and the drivers release the GIL while they work, so the two
halves overlap. The reader stays at most ``depth`` batches ahead (memory is
bounded), and stopping the consumer stops the reader and closes its
iterator in the reader's own thread (a generator cannot be closed from
another thread while it runs).

A scan of a few rows (a point lookup: most of a history) reads its one
short batch in the scan's own thread: a thread started, and handed each
batch, costs it more than the overlap wins (``read_ahead``).
"""

from __future__ import annotations

import contextvars
import queue
import threading
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.05


def prefetch(
    source: Iterator[T],
    depth: int = 4,
    name: str = "prefetch",
    read_ahead: Callable[[T], bool] | None = None,
) -> Iterator[T]:
    """Yields what ``source`` yields, read ahead in a thread; errors re-raise here.

    With ``read_ahead``, the first item is read in this thread, and a thread
    reads the rest ahead only if it holds for that item (a full batch: more
    are likely to follow) or a second one comes."""
    if read_ahead is not None:
        handed = False
        try:
            for n, early in enumerate(source):
                yield early
                if n > 0 or read_ahead(early):
                    handed = True
                    break
            else:
                return
        finally:
            close = getattr(source, "close", None)
            if not handed and close is not None:
                close()
        yield from prefetch(source, depth, name)
        return
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in source:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as exc:  # handed to the consumer, re-raised there
            put(exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    # The reader logs in the consumer's context (its query id, for one).
    context = contextvars.copy_context()
    reader = threading.Thread(target=context.run, args=(read,), name=name, daemon=True)
    reader.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()
