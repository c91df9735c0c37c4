"""MariaDB / MySQL backend (mysql-connector-python): read-only, streamed, cancellable.

Every scan runs in ``START TRANSACTION READ ONLY`` with the server's own
statement timeout (MariaDB ``SET STATEMENT max_statement_time``, MySQL the
``MAX_EXECUTION_TIME`` hint), reads through an unbuffered cursor, and is
cancelled with ``KILL QUERY`` on its connection id from a separate
connection.

Connections are pooled here rather than with the driver's pool: a scan that
was killed or timed out leaves its connection in an unknown state, and the
driver's pool can only hand it back, not discard it.
"""

from __future__ import annotations

import contextlib
import queue
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import mysql.connector
from mysql.connector import errorcode

from accord.errors import ConfigError, SourceError, SourceTimedOut, SourceUnavailable, scrubbed
from adapters.backends.base import Backend, rows_to_batch
from adapters.backends.dsn import MYSQL_SCHEMES, mysql_connect_args

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

CONNECT_TIMEOUT_S = 5
_INTERRUPTED = {errorcode.ER_QUERY_INTERRUPTED, 1969, 3024}  # killed; MariaDB/MySQL timeouts


def connection_config(dsn: str) -> dict[str, Any]:
    """``mysql://user:password@host:port/database`` as driver arguments.

    >>> c = connection_config("mysql://127.0.0.1/oms")
    >>> c["user"], c["password"], c["port"], c["database"]
    ('root', '', 3306, 'oms')
    """
    url = urlsplit(dsn)
    if url.scheme not in MYSQL_SCHEMES or not url.path.strip("/"):
        raise ConfigError("a MariaDB/MySQL DSN looks like mysql://user@host:3306/database")
    # the query part (driver options for the data loader) is not the adapter's
    parsed = mysql_connect_args(url._replace(query="").geturl(), database=False)
    return {
        "host": parsed["host"],
        "port": parsed["port"],
        "user": parsed.get("user", "root"),
        "password": parsed.get("password", ""),
        "database": url.path.strip("/"),
        "connection_timeout": CONNECT_TIMEOUT_S,
        "charset": "utf8mb4",
        "use_pure": True,
        "autocommit": False,
    }


class MysqlBackend(Backend):
    dialect = "mysql"

    def __init__(self, source: str, dsn: str, max_connections: int = 8) -> None:
        super().__init__()
        self.source = source
        self._config = connection_config(dsn)
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue(maxsize=max_connections)
        self._mariadb: bool | None = None

    def _connect(self) -> Any:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        try:
            conn = mysql.connector.connect(**self._config)
        except mysql.connector.Error as exc:
            raise SourceUnavailable(
                self.source, f"its database is unreachable: {scrubbed(exc.msg or '')}"
            ) from exc
        if self._mariadb is None:
            self._mariadb = "mariadb" in str(conn.server_info).lower()
        return conn

    def _release(self, conn: Any, healthy: bool) -> None:
        if healthy:
            try:
                self._idle.put_nowait(conn)
                return
            except queue.Full:
                pass
        with contextlib.suppress(mysql.connector.Error):  # already broken: nothing to give back
            conn.close()

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
        healthy = False
        statement = self._with_timeout(sql.replace("?", "%s"), timeout_s)
        if not self._started(token, conn.connection_id):
            self._release(conn, healthy=True)
            raise SourceTimedOut(self.source, "the scan was cancelled")
        try:
            cursor = conn.cursor(buffered=False)  # rows stream from the server
            # The driver's start_transaction(readonly=True) refuses MariaDB
            # (it reports itself as 5.5.5-...): say it in SQL.
            cursor.execute("START TRANSACTION READ ONLY")
            cursor.execute(statement, params)
            while rows := cursor.fetchmany(batch_rows):
                yield rows_to_batch(rows, types)
            cursor.close()
            conn.rollback()  # a read-only transaction: nothing to commit
            healthy = True
        except mysql.connector.Error as exc:
            if exc.errno in _INTERRUPTED:
                raise SourceTimedOut(
                    self.source, "the statement was cancelled or timed out"
                ) from exc
            if isinstance(exc, (mysql.connector.InterfaceError, mysql.connector.OperationalError)):
                raise SourceUnavailable(
                    self.source, f"database: {scrubbed(exc.msg or '')}"
                ) from exc
            raise SourceError(self.source, f"database error: {scrubbed(exc.msg or '')}") from exc
        finally:
            self._finished(token)
            self._release(conn, healthy)

    def _with_timeout(self, statement: str, timeout_s: float | None) -> str:
        """The server's own statement timeout around ``statement``.

        ``?`` placeholders became the driver's ``%s``: every literal is a bound
        parameter, so the SQL text holds no other question mark.
        """
        if timeout_s is None:
            return statement
        if self._mariadb:
            return f"SET STATEMENT max_statement_time={max(timeout_s, 0.001):.3f} FOR {statement}"
        hint = f"SELECT /*+ MAX_EXECUTION_TIME({max(int(timeout_s * 1000), 1)}) */"
        return statement.replace("SELECT", hint, 1)

    def _interrupt(self, connection_ids: list[Any]) -> None:
        if not connection_ids:
            return
        try:
            killer = mysql.connector.connect(**self._config)
        except mysql.connector.Error:
            return  # the server is gone: so are its queries
        try:
            cursor = killer.cursor()
            for connection_id in connection_ids:
                with contextlib.suppress(mysql.connector.Error):  # it may have finished
                    cursor.execute(f"KILL QUERY {int(connection_id)}")
        finally:
            killer.close()

    def check(self) -> None:
        conn = self._connect()
        try:
            conn.ping(reconnect=False)
        except mysql.connector.Error as exc:
            self._release(conn, healthy=False)
            raise SourceUnavailable(self.source, "its database is unreachable") from exc
        self._release(conn, healthy=True)

    def close(self) -> None:
        self.cancel_all()
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
            except mysql.connector.Error:
                continue
