"""PostgreSQL backend (ADBC): pooled, read-only, streamed as Arrow, cancellable.

Every session is read-only at the database level
(``default_transaction_read_only``), every scan runs in a transaction with a
``statement_timeout`` equal to the time the broker has left, and rows arrive
as Arrow batches decoded in C++ by the ADBC driver from PostgreSQL's binary
``COPY`` (no Python object per value, about three times less CPU than
parsing CSV ``COPY`` output). Cancelling a scan sends PostgreSQL a cancel
request for exactly that backend process.

The ADBC driver streams only a statement without parameters (with bound
parameters it reads the whole result into memory first), so the literals are
bound client-side by psycopg's adaptation, as ``ClientCursor.mogrify`` does
(libpq quoting rules); Accord never writes a value into SQL text itself.
"""

from __future__ import annotations

import contextlib
import queue
import re
from typing import TYPE_CHECKING, Any

import adbc_driver_postgresql.dbapi as adbc_pg
import pyarrow as pa
import pyarrow.compute as pc
from adbc_driver_manager import dbapi
from adbc_driver_postgresql import StatementOptions
from psycopg import sql as pg_sql
from psycopg.conninfo import make_conninfo

from accord.errors import SourceError, SourceTimedOut, SourceUnavailable, scrubbed
from adapters.backends.base import Backend

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Seconds to wait for a connection before the source counts as down.
CONNECT_TIMEOUT_S = 5
#: Bytes of COPY data the driver decodes into one Arrow batch (then sliced to
#: ``batch_rows``): bounds the memory of a scan whatever its size.
BATCH_BYTES_HINT = 4 << 20
_CANCELLED = "57014"  # query_canceled: a cancel request or statement_timeout
_CANCELLED_MESSAGE = "canceling statement due to"  # its message (user request, timeout)
_CONNECTION_CLASS = "08"  # connection exceptions
_CONNECTION_LOST = "server closed the connection"  # libpq's words for a dropped session
_PLACEHOLDER = re.compile(r"(%s|%%)")


class PostgresBackend(Backend):
    dialect = "postgres"

    def __init__(self, source: str, dsn: str, max_connections: int = 8) -> None:
        super().__init__()
        self.source = source
        self._conninfo = make_conninfo(
            dsn,
            options="-c default_transaction_read_only=on",  # no writes, whatever is sent
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=f"accord-adapter-{source.lower()}",
        )
        self._idle: queue.LifoQueue[dbapi.Connection] = queue.LifoQueue(maxsize=max_connections)

    def _connect(self) -> tuple[dbapi.Connection, bool]:
        """A connection and whether it was pooled (it may have died idle)."""
        try:
            return self._idle.get_nowait(), True
        except queue.Empty:
            pass
        try:
            return adbc_pg.connect(self._conninfo, autocommit=False), False
        except dbapi.Error as exc:
            raise SourceUnavailable(self.source, "its PostgreSQL database is unreachable") from exc

    def _release(self, conn: dbapi.Connection, healthy: bool) -> None:
        if healthy:
            try:
                conn.rollback()  # a read-only transaction: nothing to commit
                self._idle.put_nowait(conn)
                return
            except (dbapi.Error, queue.Full):
                pass
        with contextlib.suppress(dbapi.Error):  # already broken: nothing to give back
            conn.close()

    def _begin(self, timeout_s: float | None) -> tuple[dbapi.Connection, dbapi.Cursor]:
        """A connection in a transaction set up for one scan. A pooled
        connection the server closed fails here, before any row: it is
        dropped and a new one opened."""
        settings = {"DateStyle": "ISO", "IntervalStyle": "iso_8601"}
        if timeout_s is not None:
            settings["statement_timeout"] = str(max(int(timeout_s * 1000), 1))
        params = [v for pair in settings.items() for v in pair]
        calls = ", ".join(
            f"set_config(${2 * i + 1}, ${2 * i + 2}, true)" for i in range(len(settings))
        )
        while True:
            conn, pooled = self._connect()
            cursor = conn.cursor()
            try:
                cursor.execute(f"SELECT {calls}", params)
                cursor.fetchall()
                return conn, cursor
            except dbapi.Error as exc:
                with contextlib.suppress(dbapi.Error):
                    cursor.close()
                self._release(conn, healthy=False)
                if not pooled:
                    raise self._error(exc) from exc

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
        query = bind_client_side(sql, params)
        conn, cursor = self._begin(timeout_s)
        healthy = False
        if not self._started(token, cursor):
            cursor.close()
            self._release(conn, healthy=True)
            raise SourceTimedOut(self.source, "the scan was cancelled")
        try:
            cursor.adbc_statement.set_options(
                **{StatementOptions.BATCH_SIZE_HINT_BYTES.value: str(BATCH_BYTES_HINT)}
            )
            cursor.execute(query)
            names = [f"c{i}" for i in range(len(types))]
            for batch in cursor.fetch_record_batch():
                stored = as_stored(batch, types, names)
                for offset in range(0, stored.num_rows, batch_rows):
                    yield stored.slice(offset, batch_rows)  # zero-copy
            healthy = True
        except (dbapi.Error, pa.ArrowException, OSError) as exc:  # Arrow: the stream failed
            raise self._error(exc) from exc
        finally:
            self._finished(token)
            if not healthy:  # failed, or closed early: stop the statement, drop the connection
                with contextlib.suppress(dbapi.Error):
                    cursor.adbc_cancel()
            with contextlib.suppress(dbapi.Error):
                cursor.close()
            self._release(conn, healthy)

    def _error(self, exc: Exception) -> Exception:
        # An error raised while the Arrow stream is read comes as an Arrow
        # error without its SQLSTATE: the server's message tells it then.
        state = getattr(exc, "sqlstate", None) or ""
        message = f"PostgreSQL: {_server_message(exc)}"
        if state == _CANCELLED or _CANCELLED_MESSAGE in str(exc):
            return SourceTimedOut(self.source, "the statement was cancelled or timed out")
        if state.startswith(_CONNECTION_CLASS) or isinstance(exc, dbapi.OperationalError):
            return SourceUnavailable(self.source, message)
        if not isinstance(exc, dbapi.Error) and _CONNECTION_LOST in str(exc):
            return SourceUnavailable(self.source, message)
        return SourceError(self.source, message)

    def _interrupt(self, handles: list[Any]) -> None:
        for cursor in handles:
            with contextlib.suppress(dbapi.Error):  # it may have finished
                cursor.adbc_cancel()  # a cancel request for that backend process only

    def check(self) -> None:
        conn, cursor = self._begin(None)
        cursor.close()
        self._release(conn, healthy=True)

    def close(self) -> None:
        self.cancel_all()
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(dbapi.Error):
                conn.close()


def bind_client_side(sql: str, params: list[Any]) -> str:
    """``sql`` with each ``%s`` replaced by its parameter as psycopg quotes it.

    >>> bind_client_side("SELECT 1 WHERE a = %s AND b LIKE %s", ["O'Brien", "50%"])
    "SELECT 1 WHERE a = 'O''Brien' AND b LIKE '50%'"
    """
    values = iter(params)
    parts: list[pg_sql.Composable] = []
    for piece in _PLACEHOLDER.split(sql):
        if piece == "%s":
            try:
                parts.append(pg_sql.Literal(next(values)))
            except StopIteration:
                raise ValueError("more placeholders than parameters") from None
        elif piece == "%%":
            parts.append(pg_sql.SQL("%"))
        elif piece:
            parts.append(pg_sql.SQL(piece))
    if next(values, _NO_MORE) is not _NO_MORE:
        raise ValueError("more parameters than placeholders")
    return pg_sql.Composed(parts).as_string(None)


_NO_MORE = object()


def as_stored(batch: pa.RecordBatch, types: list[pa.DataType], names: list[str]) -> pa.RecordBatch:
    """The driver's batch with each column as the type the adapter reads it
    as (PostgreSQL's ``integer`` arrives as int32, say). A column that does
    not cast is left as it came, for the conversion to the logical type to
    judge value by value."""
    arrays = []
    for column, wanted in zip(batch.columns, types, strict=True):
        array = column
        if array.type != wanted:
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                array = pc.cast(column, wanted)
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _server_message(exc: Exception) -> str:
    """The server's own error line, scrubbed. The driver's message also
    quotes the statement, literals and all: that part never leaves."""
    text = str(exc)
    _, found, server = text.partition("ERROR:")
    line = (server if found else text).strip()
    return scrubbed(line) if line else type(exc).__name__
