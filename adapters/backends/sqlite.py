"""SQLite backend: the embedded default, one file per source system."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from typing import TYPE_CHECKING, Any

from accord.errors import SourceError, SourceTimedOut, SourceUnavailable, scrubbed
from adapters.backends.base import Backend, rows_to_batch

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import pyarrow as pa


#: Idle connections kept for the next scans. Opening one costs about a
#: millisecond (SQLite reads the schema on its first statement), a point
#: lookup's statement microseconds.
POOL_SIZE = 8


class SqliteBackend(Backend):
    dialect = "sqlite"

    def __init__(self, source: str, path: Path) -> None:
        super().__init__()
        self.source = source
        self.path = path
        self._pool_lock = threading.Lock()
        #: (connection, the file's (device, inode) when it was opened)
        self._idle: list[tuple[sqlite3.Connection, tuple[int, int]]] = []

    def _file(self) -> tuple[int, int]:
        """The database file's identity; SourceUnavailable when it is gone."""
        try:
            found = os.stat(self.path)
        except OSError:
            found = None
        if found is None or not stat.S_ISREG(found.st_mode):
            raise SourceUnavailable(self.source, f"its database file {self.path.name} is missing")
        return found.st_dev, found.st_ino

    def _checkout(self) -> tuple[sqlite3.Connection, tuple[int, int]]:
        """An idle connection to the file as it is now, else a new one: one
        opened on a file since replaced would read the old file."""
        identity = self._file()
        stale = []
        found = None
        with self._pool_lock:
            while self._idle and found is None:
                conn, opened_on = self._idle.pop()
                if opened_on == identity:
                    found = conn
                else:
                    stale.append(conn)
        for conn in stale:
            conn.close()
        return (found if found is not None else self._connect()), identity

    def _checkin(self, conn: sqlite3.Connection, identity: tuple[int, int]) -> None:
        conn.set_progress_handler(None, 0)
        with self._pool_lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append((conn, identity))
                return
        conn.close()

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
        conn, identity = self._checkout()
        deadline = time.monotonic() + timeout_s if timeout_s is not None else None
        if deadline is not None:
            # SQLite has no statement timeout: a progress handler that answers
            # non-zero aborts the statement ("interrupted").
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        if not self._started(token, conn):
            conn.close()
            raise SourceTimedOut(self.source, "the scan was cancelled")
        read_whole = False
        try:
            cursor = conn.execute(sql, params)
            while rows := cursor.fetchmany(batch_rows):
                yield rows_to_batch(rows, types)
            cursor.close()
            read_whole = True
        except sqlite3.Error as exc:
            if deadline is not None and time.monotonic() > deadline:
                raise SourceTimedOut(self.source, "the statement ran past its deadline") from exc
            raise SourceError(self.source, f"database error: {scrubbed(str(exc))}") from exc
        finally:
            self._finished(token)
            # Only a connection whose statement ran to its end is used again:
            # one interrupted, failed or left mid-read (the caller went away)
            # is closed.
            if read_whole:
                self._checkin(conn, identity)
            else:
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
        self.cancel_all()
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def check(self) -> None:
        self._connect().close()
