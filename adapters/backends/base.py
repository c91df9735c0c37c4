"""The one interface every database backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


class Backend(ABC):
    """A read-only, pooled connection to one source system's database."""

    #: sqlglot dialect the physical SQL is generated in (a key of translate.RULES).
    dialect: str

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

    @abstractmethod
    def cancel(self, token: str) -> None:
        """Cancels the statement running under ``token`` in the database, if any."""

    @abstractmethod
    def cancel_all(self) -> None:
        """Cancels every statement running now (adapter shutdown)."""

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
