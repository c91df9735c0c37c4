"""SQLite backend: the embedded default, one file per source system."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from accord.errors import SourceError, SourceTimedOut, SourceUnavailable, scrubbed
from adapters.backends.base import Backend, rows_to_batch

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import pyarrow as pa


class SqliteBackend(Backend):
    dialect = "sqlite"

    def __init__(self, source: str, path: Path) -> None:
        super().__init__()
        self.source = source
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise SourceUnavailable(self.source, f"its database file {self.path.name} is missing")
        # mode=ro opens the file read-only at the OS level; query_only also
        # refuses any write statement on this connection.
        conn = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
        conn.execute("PRAGMA query_only = ON")
        # LIKE in SQLite ignores ASCII case by default; the federation's
        # LIKE (DuckDB's) does not, so pushed patterns must not either.
        conn.execute("PRAGMA case_sensitive_like = ON")
        return conn

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
        conn = self._connect()
        deadline = time.monotonic() + timeout_s if timeout_s is not None else None
        if deadline is not None:
            # SQLite has no statement timeout: a progress handler that answers
            # non-zero aborts the statement ("interrupted").
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        if not self._started(token, conn):
            conn.close()
            raise SourceTimedOut(self.source, "the scan was cancelled")
        try:
            cursor = conn.execute(sql, params)
            while rows := cursor.fetchmany(batch_rows):
                yield rows_to_batch(rows, types)
        except sqlite3.Error as exc:
            if deadline is not None and time.monotonic() > deadline:
                raise SourceTimedOut(self.source, "the statement ran past its deadline") from exc
            raise SourceError(self.source, f"database error: {scrubbed(str(exc))}") from exc
        finally:
            self._finished(token)
            conn.close()

    def version(self) -> object | None:
        """The database file's and its write-ahead log's identity, size and
        modification time: a commit changes one of them."""
        stats: list[tuple[int, int, int] | None] = []
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                st = path.stat()
            except OSError:
                stats.append(None)
                continue
            stats.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(stats)

    def _interrupt(self, handles: list[Any]) -> None:
        for conn in handles:
            conn.interrupt()  # safe from another thread; the statement raises

    def close(self) -> None:
        self.cancel_all()  # connections are per scan; nothing is pooled

    def check(self) -> None:
        self._connect().close()
