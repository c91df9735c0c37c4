"""Aggregate pushdown on PostgreSQL and MariaDB: the proof by difference.

The unit suite's proof (``tests.test_aggregate_pushdown``) over real
databases: a PostgreSQL source renaming every column (native dates), a
MariaDB source under a case- and accent-insensitive collation (it declines
to group or order text, and a text predicate there is only a superset), and
a SQLite source with a code table and day-first text dates. Each generated
query is answered with partial aggregates asked of the sources and with
rows only; the answers agree (integers and decimals exactly, floats within
a tolerance), with every source up or one down.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from accord.federation import parse_federation
from tests.integration.servers import scratch_mariadb, scratch_postgres
from tests.test_aggregate_pushdown import (
    CODED_TABLES,
    COLUMNS,
    RENAMED,
    RENAMED_TABLES,
    _header,
    _stored,
    answer,
    queries,
    rows,
    same,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from accord.federation import Federation
    from adapters.backends.base import Backend

pytestmark = pytest.mark.integration

SOURCES = ("PG", "MDB", "LITE")


def federation(pg: str, mariadb: str, lite: Path) -> Federation:
    return parse_federation(
        {
            "logical_model": {"facts": {"columns": COLUMNS}},
            "sources": [
                {
                    "code": "PG",
                    "backend": {"kind": "postgresql", "dsn": pg},
                    "tables": RENAMED_TABLES,
                    "release": {"facts": "all"},
                },
                {
                    "code": "MDB",
                    "backend": {"kind": "mysql", "dsn": mariadb},
                    "tables": {"facts": {}},
                    "release": {"facts": "all"},
                },
                {
                    "code": "LITE",
                    "backend": {"kind": "sqlite", "path": str(lite)},
                    "tables": CODED_TABLES,
                    "release": {"facts": "all"},
                },
            ],
        }
    )


@contextlib.contextmanager
def databases(root: Path) -> Iterator[tuple[Federation, dict[str, Backend], dict[str, Any]]]:
    """The three sources, each with a writer that replaces its rows."""
    import mysql.connector
    import psycopg

    from adapters.backends.mysql import MysqlBackend
    from adapters.backends.postgres import PostgresBackend
    from adapters.backends.sqlite import SqliteBackend

    with scratch_postgres("accord_agg") as pg, scratch_mariadb("accord_agg") as mdb:
        pg_writer = psycopg.connect(pg, autocommit=True)
        pg_types = ("TEXT", "BIGINT", "DOUBLE PRECISION", "BIGINT", "DATE", "TEXT")
        pg_columns = ", ".join(
            f'"{RENAMED[c]}" {t}' for c, t in zip(COLUMNS, pg_types, strict=True)
        )
        pg_writer.execute(f'CREATE TABLE "FACT" ({pg_columns})')
        my_writer = mysql.connector.connect(
            host="127.0.0.1", port=3306, user="root", password="", database=mdb.rsplit("/", 1)[1]
        )
        my_cursor = my_writer.cursor()
        my_cursor.execute(
            "CREATE TABLE facts (k VARCHAR(20), g BIGINT, x DOUBLE, n BIGINT, d DATE, "
            "c VARCHAR(5)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        )
        lite = root / "lite.sqlite"
        lite_writer = sqlite3.connect(lite, isolation_level=None)
        lite_writer.execute(
            "CREATE TABLE facts (k TEXT, g INTEGER, x REAL, n INTEGER, d TEXT, c TEXT)"
        )

        def write_pg(data: list[tuple[Any, ...]]) -> None:
            with pg_writer.transaction(), pg_writer.cursor() as cur:
                cur.execute('DELETE FROM "FACT"')
                cur.executemany('INSERT INTO "FACT" VALUES (%s, %s, %s, %s, %s, %s)', data)

        def write_mdb(data: list[tuple[Any, ...]]) -> None:
            my_cursor.execute("DELETE FROM facts")
            if data:
                my_cursor.executemany("INSERT INTO facts VALUES (%s, %s, %s, %s, %s, %s)", data)
            my_writer.commit()

        def write_lite(data: list[tuple[Any, ...]]) -> None:
            lite_writer.execute("BEGIN")
            lite_writer.execute("DELETE FROM facts")
            stored = [_stored("CODED", row) for row in data]
            lite_writer.executemany("INSERT INTO facts VALUES (?, ?, ?, ?, ?, ?)", stored)
            lite_writer.execute("COMMIT")

        fed = federation(pg, mdb, lite)
        backends: dict[str, Backend] = {
            "PG": PostgresBackend("PG", pg),
            "MDB": MysqlBackend("MDB", mdb),
            "LITE": SqliteBackend("LITE", lite),
        }
        try:
            yield fed, backends, {"PG": write_pg, "MDB": write_mdb, "LITE": write_lite}
        finally:
            for backend in backends.values():
                backend.close()
            pg_writer.close()
            my_writer.close()
            lite_writer.close()


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with databases(tmp_path_factory.mktemp("aggregates")) as opened:
        yield opened


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sql=queries(),
    data=st.fixed_dictionaries({s: rows for s in SOURCES}),
    down=st.sets(st.sampled_from(SOURCES), max_size=1),
)
def test_pushed_and_kept_aggregates_agree_on_real_databases(sources, sql, data, down):
    fed, backends, writers = sources
    for code, write in writers.items():
        write(data[code])
    gone = frozenset(down)
    pushed, results = answer(sql, backends, aggregates=True, down=gone, federation=fed)
    kept, _ = answer(sql, backends, aggregates=False, down=gone, federation=fed)
    same(pushed, kept)
    for r in results:
        if r.spec.aggregate is not None and r.error is None:
            event(f"{r.source} {'aggregated' if r.aggregated else 'declined'}")


def test_postgresql_and_mariadb_aggregate_what_they_can(sources):
    fed, backends, writers = sources
    import datetime as dt

    row = ("a", 1, 1.5, 2**40, dt.date(1995, 1, 1), "X")
    for write in writers.values():
        write([row, row])
    sql = "SELECT g, count(*) AS n, sum(x) AS s, sum(n) AS t, max(d) AS d FROM facts GROUP BY g"
    table, results = answer(sql, backends, aggregates=True, federation=fed)
    done = {r.source: r.aggregated for r in results}
    assert done == {"PG": True, "MDB": True, "LITE": False}  # LITE's dates are text
    assert table.to_pylist() == [
        {"g": 1, "n": 6, "s": 9.0, "t": 6 * 2**40, "d": dt.date(1995, 1, 1)}
    ]
    # Under MariaDB's collation 'b' = 'B': grouped on its bytes, they stay apart.
    for write in writers.values():
        write([("b", *row[1:]), ("B", *row[1:]), ("B ", *row[1:])])
    sql = "SELECT k, count(*) AS n FROM facts GROUP BY k"
    table, results = answer(sql, backends, aggregates=True, federation=fed)
    assert all(r.aggregated for r in results)
    assert sorted((r["k"], r["n"]) for r in table.to_pylist()) == [("B", 3), ("B ", 3), ("b", 3)]
    _, results = answer("SELECT max(k) FROM facts", backends, aggregates=True, federation=fed)
    mdb = next(r for r in results if r.source == "MDB")
    assert not mdb.aggregated and "collation" in _header(mdb).aggregate_declined
