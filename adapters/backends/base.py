"""The one interface every database backend implements."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


#: Cancellations remembered for statements not started yet.
_MAX_PENDING_CANCELS = 10_000


class Backend(ABC):
    """A read-only, pooled connection to one source system's database.

    Running statements are registered by token, so a cancellation can find
    them; one that arrives before its statement started is remembered and
    refuses the start (a broker may cancel within the first milliseconds).
    """

    #: sqlglot dialect the physical SQL is generated in (a key of dialects.RULES).
    dialect: str

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, Any] = {}  # token -> what _interrupt needs
        self._cancelled: dict[str, None] = {}  # ordered: oldest dropped past the cap
        #: Statements of ``adapters.aggregate``'s date checks that passed, with
        #: the :meth:`version` of the data they passed on.
        self.checked: dict[str, object] = {}

    def _started(self, token: str, handle: Any) -> bool:
        """Registers a statement about to run; False when it was already cancelled."""
        with self._lock:
            if token in self._cancelled:
                del self._cancelled[token]
                return False
            self._running[token] = handle
            return True

    def _finished(self, token: str) -> None:
        with self._lock:
            self._running.pop(token, None)
            self._cancelled.pop(token, None)

    def cancel(self, token: str) -> None:
        """Cancels the statement running under ``token`` in the database (or,
        not started yet, keeps it from starting)."""
        with self._lock:
            handle = self._running.get(token)
            if handle is None:
                self._cancelled[token] = None
                while len(self._cancelled) > _MAX_PENDING_CANCELS:
                    del self._cancelled[next(iter(self._cancelled))]
                return
        self._interrupt([handle])

    def cancel_all(self) -> None:
        """Cancels every statement running now (adapter shutdown)."""
        with self._lock:
            handles = list(self._running.values())
        self._interrupt(handles)

    @abstractmethod
    def _interrupt(self, handles: list[Any]) -> None:
        """Stops these running statements in the database."""

    @abstractmethod
    def execute(
        self,
        sql: str,
        params: list[Any],
        types: list[pa.DataType],
        *,
        batch_rows: int,
        token: str,
        timeout_s: float | None,
    ) -> Iterator[pa.RecordBatch]:
        """Runs one read-only statement and yields its rows as Arrow batches of
        the stored values (``types``: one per selected column), streamed from
        the database, never the whole result in memory.

        ``token`` names the statement for :meth:`cancel`; ``timeout_s`` becomes
        the database's own statement timeout. Closing the iterator early must
        stop the statement and give the connection back.
        """

    def version(self) -> object | None:
        """A value that changes whenever the stored data may have, or None
        where the backend cannot tell (then nothing is remembered of it)."""
        return None

    @abstractmethod
    def check(self) -> None:
        """Raises SourceUnavailable when the database cannot be reached."""

    @abstractmethod
    def close(self) -> None:
        """Releases pooled connections."""


def rows_to_batch(rows: Sequence[tuple[Any, ...]], types: list[pa.DataType]) -> pa.RecordBatch:
    """Driver rows as one Arrow batch of stored values, for drivers that give
    tuples (the transposition runs in C: zip). A column the driver hands back
    in another Python type (a number in a text column, say) is inferred and
    left for the conversion to the logical type to check."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in types]
    arrays = []
    for values, wanted in zip(columns, types, strict=True):
        try:
            arrays.append(pa.array(values, type=wanted))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array(values))
    return pa.RecordBatch.from_arrays(arrays, names=[f"c{i}" for i in range(len(types))])
