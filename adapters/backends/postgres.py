"""PostgreSQL backend (psycopg 3): pooled, read-only, streamed, cancellable.

Every session is read-only at the database level
(``default_transaction_read_only``), every scan runs in a transaction with a
``statement_timeout`` equal to the time the broker has left, rows stream
through a server-side cursor, and cancelling a scan sends PostgreSQL a
cancel request for exactly that backend process.
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from accord.errors import SourceError, SourceTimedOut, SourceUnavailable
from adapters.backends.base import Backend

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Seconds to wait for a pooled connection before the source counts as down.
CONNECT_TIMEOUT_S = 5.0


class PostgresBackend(Backend):
    dialect = "postgres"

    def __init__(self, source: str, dsn: str, max_connections: int = 8) -> None:
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
        self._lock = threading.Lock()
        self._running: dict[str, psycopg.Connection[Any]] = {}
        self._cursors = itertools.count()

    def execute(
        self, sql: str, params: list[Any], batch_rows: int, token: str, timeout_s: float | None
    ) -> Iterator[list[tuple[Any, ...]]]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                if timeout_s is not None:
                    milliseconds = max(int(timeout_s * 1000), 1)
                    conn.execute("SELECT set_config('statement_timeout', %s, true)",
                                 [str(milliseconds)])
                with self._lock:
                    self._running[token] = conn
                try:
                    # A named (server-side) cursor streams: rows arrive batch by batch.
                    with conn.cursor(name=f"accord_scan_{next(self._cursors)}") as cursor:
                        cursor.itersize = batch_rows
                        cursor.execute(sql, params)
                        while rows := cursor.fetchmany(batch_rows):
                            yield rows
                finally:
                    with self._lock:
                        self._running.pop(token, None)
        except PoolTimeout as exc:
            raise SourceUnavailable(self.source, "its PostgreSQL database is unreachable") from exc
        except pg_errors.QueryCanceled as exc:
            raise SourceTimedOut(self.source, "the statement was cancelled or timed out") from exc
        except psycopg.OperationalError as exc:
            raise SourceUnavailable(self.source, f"PostgreSQL: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise SourceError(self.source, f"PostgreSQL: {_first_line(exc)}") from exc

    def cancel(self, token: str) -> None:
        with self._lock:
            conn = self._running.get(token)
        if conn is not None:
            conn.cancel_safe()  # a cancel request for that backend process only

    def cancel_all(self) -> None:
        with self._lock:
            running = list(self._running.values())
        for conn in running:
            conn.cancel_safe()

    def check(self) -> None:
        try:
            with self._pool.connection() as conn:
                conn.execute("SELECT 1")
        except (PoolTimeout, psycopg.Error) as exc:
            raise SourceUnavailable(self.source, "its PostgreSQL database is unreachable") from exc

    def close(self) -> None:
        self.cancel_all()
        self._pool.close()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
