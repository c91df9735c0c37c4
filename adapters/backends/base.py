"""The one interface every database backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


class Backend(ABC):
    """A read-only, pooled connection to one source system's database."""

    #: sqlglot dialect the physical SQL is generated in (a key of translate.RULES).
    dialect: str

    @abstractmethod
    def execute(
        self, sql: str, params: list[Any], batch_rows: int, token: str, timeout_s: float | None
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Runs one read-only statement and yields its rows in chunks, streamed
        from the database (never the whole result in memory).

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
