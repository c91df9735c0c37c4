"""Deadlines and cancellation reach the database: a statement timeout ends a
slow query, and a cancelled scan's query is gone from the server's own list
of running statements (pg_stat_activity, SHOW PROCESSLIST)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, TypedDict

import pyarrow as pa
import pytest

from accord.errors import SourceTimedOut
from tests.integration.servers import require_mariadb, require_postgres

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from adapters.backends.base import Backend
    from adapters.backends.mysql import MysqlBackend
    from adapters.backends.postgres import PostgresBackend

pytestmark = pytest.mark.integration

PG = "postgresql://postgres@127.0.0.1:5432/postgres"
MARIADB = "mysql://root@127.0.0.1:3306/mysql"
# Slow on purpose, and long enough never to finish during a test.
PG_SLOW = "SELECT pg_sleep(30), %s::text AS marker"
MARIADB_SLOW = "SELECT COUNT(*), ? AS marker FROM seq_1_to_100000000000 a"


@pytest.fixture
def pg() -> Iterator[PostgresBackend]:

    from adapters.backends.postgres import PostgresBackend

    require_postgres()
    backend = PostgresBackend("TEST", PG)
    yield backend
    backend.close()


@pytest.fixture
def mariadb() -> Iterator[MysqlBackend]:

    from adapters.backends.mysql import MysqlBackend

    require_mariadb()
    backend = MysqlBackend("TEST", MARIADB)
    yield backend
    backend.close()


def pg_running(marker: str) -> int:
    import psycopg

    with psycopg.connect(PG) as conn:
        # A streamed scan runs as FETCH on its cursor: find it by the adapter's name.
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            "AND application_name = 'accord-adapter-test'"
        ).fetchone()
    assert row is not None  # count(*) always answers one row
    count: int = row[0]
    return count


def mariadb_running(marker: str) -> int:
    import mysql.connector

    conn = mysql.connector.connect(host="127.0.0.1", user="root", password="")
    try:
        cursor = conn.cursor()
        cursor.execute("SHOW FULL PROCESSLIST")
        count = 0
        for row in cursor.fetchall():
            assert isinstance(row, tuple)  # a plain cursor's rows
            command, info = row[4], row[7]
            assert info is None or isinstance(info, str)
            if command == "Query" and info and "seq_1_to_100000000000" in info:
                count += 1
        return count
    finally:
        conn.close()


class Outcome(TypedDict, total=False):
    result: str | Exception  # "finished", or what the scan raised
    elapsed: float


def run_in_thread(
    backend: Backend, sql: str, token: str, timeout_s: float | None = None
) -> tuple[threading.Thread, Outcome]:
    outcome: Outcome = {}

    def target() -> None:
        started = time.monotonic()
        try:
            types = [pa.string(), pa.string()]
            for _ in backend.execute(
                sql, [token], types, batch_rows=100, token=token, timeout_s=timeout_s
            ):
                pass
            outcome["result"] = "finished"
        except Exception as exc:  # the test inspects it
            outcome["result"] = exc
        outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    ("fixture", "sql", "running"),
    [
        ("pg", PG_SLOW, pg_running),
        ("mariadb", MARIADB_SLOW, mariadb_running),
    ],
)
def test_statement_timeout_ends_the_query(request, fixture, sql, running):
    backend = request.getfixturevalue(fixture)
    token = uuid.uuid4().hex
    thread, outcome = run_in_thread(backend, sql, token, timeout_s=0.5)
    thread.join(timeout=15)
    assert isinstance(outcome["result"], SourceTimedOut)
    assert outcome["elapsed"] < 5
    assert wait_until(lambda: running(token) == 0)


@pytest.mark.parametrize(
    ("fixture", "sql", "running"),
    [
        ("pg", PG_SLOW, pg_running),
        ("mariadb", MARIADB_SLOW, mariadb_running),
    ],
)
def test_cancel_stops_the_query_in_the_database(request, fixture, sql, running):
    backend = request.getfixturevalue(fixture)
    token = uuid.uuid4().hex
    thread, outcome = run_in_thread(backend, sql, token)
    assert wait_until(lambda: running(token) == 1), "the slow query never showed up"
    started = time.monotonic()
    backend.cancel(token)
    thread.join(timeout=15)
    assert time.monotonic() - started < 5
    assert isinstance(outcome["result"], SourceTimedOut)
    assert wait_until(lambda: running(token) == 0), "the query is still running"


def test_sessions_are_read_only(pg, mariadb):
    """Even a statement that writes as a side effect is refused by the database.

    (The adapter only ever sends SELECTs it generated; this is the second wall.
    MariaDB still lets DDL through a read-only transaction with an implicit
    commit, hence the read-only account in deploy/README.)"""
    import mysql.connector
    import psycopg

    from accord.errors import SourceError

    name = f"accord_ro_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG, autocommit=True) as admin:
        admin.execute(f"CREATE SEQUENCE {name}")
        try:
            with pytest.raises(SourceError, match="read-only transaction"):
                list(
                    pg.execute(
                        f"SELECT nextval('{name}')",
                        [],
                        [pa.int64()],
                        batch_rows=10,
                        token="w1",
                        timeout_s=5,
                    )
                )
        finally:
            admin.execute(f"DROP SEQUENCE {name}")
    maria_admin = mysql.connector.connect(
        host="127.0.0.1", user="root", password="", database="mysql", autocommit=True
    )
    cursor = maria_admin.cursor()
    cursor.execute(f"CREATE TABLE {name} (x int)")
    try:
        with pytest.raises(SourceError, match="READ ONLY"):
            list(
                mariadb.execute(
                    f"INSERT INTO {name} VALUES (1)",
                    [],
                    [pa.int64()],
                    batch_rows=10,
                    token="w2",
                    timeout_s=5,
                )
            )
    finally:
        cursor.execute(f"DROP TABLE {name}")
        maria_admin.close()
