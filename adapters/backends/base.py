"""The one interface every database backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


class Backend(ABC):
    """A read-only connection factory for one source system's database."""

    #: sqlglot dialect the physical SQL is generated in.
    dialect: str

    @abstractmethod
    def execute(
        self, sql: str, params: list[Any], batch_rows: int, token: str
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Runs one read-only statement and yields its rows in chunks.

        ``token`` names the statement for :meth:`cancel`. Closing the
        iterator early must stop the statement and release the connection.
        """

    @abstractmethod
    def cancel(self, token: str) -> None:
        """Interrupts the statement running under ``token``, if any."""

    @abstractmethod
    def cancel_all(self) -> None:
        """Interrupts every statement running now (adapter shutdown)."""

    @abstractmethod
    def check(self) -> None:
        """Raises when the database cannot be reached; used by health checks."""
