"""The Arrow-native drivers change no answer: the proof by difference.

The PostgreSQL adapter reads through ADBC (binary COPY into Arrow); before,
it read CSV COPY output with psycopg (``tests.legacy_backends``). For the
same generated rows (edge values and malformed stored dates included) and
the same generated predicates, as the broker's planner would push them, a
Scan through the new driver gives exactly the Arrow table, physical SQL and
bad-value counts of a Scan through the old one, on a real PostgreSQL.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings

from accord.v1 import adapter_pb2
from adapters.server import scan
from tests.integration.servers import scratch_postgres
from tests.integration.test_pushdown_differential import (
    EVERY_COLUMN,
    PHYSICAL,
    _create_table,
    federation,
    physical_rows,
    predicates,
    pushed_predicate,
)
from tests.legacy_backends import LegacyPostgres
from tests.scans import ScanAnswer, read_scan

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from adapters.backends.base import Backend

    Pair = tuple[str, Backend, Backend, Callable[[list[tuple[Any, ...]]], None]]

pytestmark = pytest.mark.integration

EXAMPLES = 40  # per backend: derandomized, the same in CI


@contextlib.contextmanager
def postgres_pair() -> Iterator[Pair]:
    import psycopg

    from adapters.backends.postgres import PostgresBackend

    with scratch_postgres("accord_drivers") as dsn:
        writer = psycopg.connect(dsn, autocommit=True)
        writer.execute(_create_table("postgres", lambda n: f'"{n}"'))
        marks = ", ".join(["%s"] * len(PHYSICAL))

        def write(rows: list[tuple[Any, ...]]) -> None:
            with writer.transaction(), writer.cursor() as cur:
                cur.execute('DELETE FROM "PRS_T"')
                cur.executemany(f'INSERT INTO "PRS_T" VALUES ({marks})', rows)

        backend = PostgresBackend("T", dsn)
        yield "postgresql", backend, LegacyPostgres(dsn), write
        backend.close()
        writer.close()


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """(kind, the adapter's backend, the old read of the same database, a writer)."""
    with postgres_pair() as opened:
        yield opened


def run(backend: Backend, kind: str, predicate: str) -> ScanAnswer:
    fed = federation(kind)
    request = adapter_pb2.ScanRequest(
        table="people", columns=EVERY_COLUMN, predicate=predicate, query_id="drivers"
    )
    return read_scan(scan(fed, fed.sources["T"], backend, request, "drivers:1", timeout_s=30))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=physical_rows, predicate=predicates)
def test_the_new_driver_reads_exactly_what_the_old_one_read(pair, rows, predicate):
    kind, new, old, write = pair
    write(rows)
    sent = pushed_predicate(federation(kind), predicate)
    got, expected = run(new, kind, sent), run(old, kind, sent)
    assert got.header == expected.header
    # pid is unique: the order a database happens to return rows in is no difference
    by_pid = [("pid", "ascending")]
    assert got.table.schema == expected.table.schema
    assert got.table.sort_by(by_pid).to_pylist() == expected.table.sort_by(by_pid).to_pylist()
    assert dict(got.trailer.bad_values) == dict(expected.trailer.bad_values)


def test_the_comparison_sees_a_difference(pair):
    """The property above can fail: a row written between the two reads shows."""
    kind, new, old, write = pair
    write([(0, "a", "A", "20000101", "01/01/2000", None, 0.5, 1)])
    before = run(old, kind, "")
    write([(0, "b", "A", "20000101", "01/01/2000", None, 0.5, 1)])
    assert run(new, kind, "").table.to_pylist() != before.table.to_pylist()
