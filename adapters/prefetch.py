"""Reading ahead: the database read of a scan runs in its own thread while
the scan's thread converts and sends the batches already read.

Arrow's parsers and the drivers release the GIL while they work, so the two
halves overlap. The reader stays at most ``depth`` batches ahead (memory is
bounded), and stopping the consumer stops the reader and closes its
iterator in the reader's own thread (a generator cannot be closed from
another thread while it runs).
"""

from __future__ import annotations

import contextvars
import queue
import threading
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterator

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.05


def prefetch(source: Iterator[T], depth: int = 4, name: str = "prefetch") -> Iterator[T]:
    """Yields what ``source`` yields, read ahead in a thread; errors re-raise here."""
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
