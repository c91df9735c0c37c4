"""PostgreSQL backend (psycopg 3): pooled, read-only, streamed, cancellable.

Every session is read-only at the database level
(``default_transaction_read_only``), every scan runs in a transaction with a
``statement_timeout`` equal to the time the broker has left, rows stream as
``COPY (SELECT ...) TO STDOUT`` CSV parsed by Arrow in C++ (no Python object
per value), and cancelling a scan sends PostgreSQL a cancel request for
exactly that backend process.
"""

from __future__ import annotations

import io
import itertools
from typing import TYPE_CHECKING, Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from accord.errors import SourceError, SourceTimedOut, SourceUnavailable, scrubbed
from adapters.backends.base import Backend

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

#: Seconds to wait for a pooled connection before the source counts as down.
CONNECT_TIMEOUT_S = 5.0


class PostgresBackend(Backend):
    dialect = "postgres"

    def __init__(self, source: str, dsn: str, max_connections: int = 8) -> None:
        super().__init__()
        self.source = source
        self._pool = ConnectionPool(
            dsn,
            min_size=0,  # connect lazily: an adapter starts even when its database is down
            max_size=max_connections,
            open=True,
            timeout=CONNECT_TIMEOUT_S,
            kwargs={
                "options": "-c default_transaction_read_only=on",  # no writes, whatever is sent
                "connect_timeout": int(CONNECT_TIMEOUT_S),
                "application_name": f"accord-adapter-{source.lower()}",
            },
            check=ConnectionPool.check_connection,  # drop connections the server closed
            name=f"accord-{source}",
        )

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
        try:
            with self._pool.connection() as conn, conn.transaction():
                settings = {"DateStyle": "ISO", "IntervalStyle": "iso_8601"}
                if timeout_s is not None:
                    settings["statement_timeout"] = str(max(int(timeout_s * 1000), 1))
                for name, value in settings.items():
                    conn.execute("SELECT set_config(%s, %s, true)", [name, value])
                # COPY cannot take server-side parameters: psycopg binds the
                # literals client-side (libpq quoting); Accord never splices text.
                query = psycopg.ClientCursor(conn).mogrify(sql, params)
                if not self._started(token, conn):
                    raise SourceTimedOut(self.source, "the scan was cancelled")
                try:
                    with conn.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
                        yield from read_csv_stream(copy, types, batch_rows)
                finally:
                    self._finished(token)
        except PoolTimeout as exc:
            raise SourceUnavailable(self.source, "its PostgreSQL database is unreachable") from exc
        except pg_errors.QueryCanceled as exc:
            raise SourceTimedOut(self.source, "the statement was cancelled or timed out") from exc
        except psycopg.OperationalError as exc:
            raise SourceUnavailable(self.source, f"PostgreSQL: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise SourceError(self.source, f"PostgreSQL: {_first_line(exc)}") from exc
        except pa.ArrowInvalid as exc:
            raise SourceError(self.source, f"unreadable COPY output: {_first_line(exc)}") from exc

    def _interrupt(self, handles: list[Any]) -> None:
        for conn in handles:
            conn.cancel_safe()  # a cancel request for that backend process only

    def check(self) -> None:
        try:
            with self._pool.connection() as conn:
                conn.execute("SELECT 1")
        except (PoolTimeout, psycopg.Error) as exc:
            raise SourceUnavailable(self.source, "its PostgreSQL database is unreachable") from exc

    def close(self) -> None:
        self.cancel_all()
        self._pool.close()


def read_csv_stream(
    chunks: Iterable[Any], types: list[pa.DataType], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """PostgreSQL's CSV COPY output, parsed by Arrow as it streams in.

    In that format NULL is an unquoted empty field and an empty string a
    quoted one, which Arrow keeps apart (``quoted_strings_can_be_null``).
    """
    names = [f"c{i}" for i in range(len(types))]
    stream = iter(chunks)
    first = next(stream, None)
    if first is None:
        return  # no rows (Arrow refuses an empty CSV)
    first = bytes(first)  # COPY's chunks are views of a buffer the next one reuses
    reader = pacsv.open_csv(
        io.BufferedReader(_ChunkReader(itertools.chain([first], stream)), buffer_size=1 << 20),
        read_options=pacsv.ReadOptions(column_names=names, block_size=_block_size(batch_rows)),
        # one NULL column is an empty line: it is a row, not a blank to skip
        parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=dict(zip(names, types, strict=True)),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )
    for batch in reader:  # at most batch_rows rows per batch (zero-copy slices)
        for offset in range(0, batch.num_rows, batch_rows):
            yield batch.slice(offset, batch_rows)


def _block_size(batch_rows: int) -> int:
    """Bytes of CSV Arrow parses at a time: about ``batch_rows`` wide rows."""
    return max(batch_rows * 128, 1 << 16)


class _ChunkReader(io.RawIOBase):
    """A file over COPY's chunks, for Arrow's streaming reader."""

    def __init__(self, chunks: Iterator[Any]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(bytes(next(self._chunks)))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _first_line(exc: BaseException) -> str:
    """The error's first line, scrubbed: PostgreSQL quotes the value it
    failed on (``invalid input syntax for type integer: "..."``)."""
    return scrubbed(str(exc)) if str(exc).strip() else type(exc).__name__
