"""A source whose database is down is a clear, per-source error; a stored value
that does not fit the logical model is NULL and counted, never an error that
takes the source down and quotes the value, never a silently different value."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from typing import TYPE_CHECKING

import grpc
import pytest

from accord import ipc
from accord.errors import SourceUnavailable, grpc_status
from accord.federation import Release, load_federation
from accord.v1 import adapter_pb2
from accord.workdir import DEFAULT_FEDERATION
from adapters.backends.mysql import MysqlBackend
from adapters.backends.postgres import PostgresBackend
from adapters.backends.sqlite import SqliteBackend
from adapters.server import scan

if TYPE_CHECKING:
    from pathlib import Path

    from adapters.backends.base import Backend

pytestmark = pytest.mark.integration

FEDERATION = load_federation(DEFAULT_FEDERATION)
REQUEST = adapter_pb2.ScanRequest(table="offenders", columns=["surname"], query_id="fault")


def run(
    backend: Backend, source: str = "CA-CSC", request: adapter_pb2.ScanRequest = REQUEST
) -> list[adapter_pb2.ScanResponse]:
    return list(scan(FEDERATION, FEDERATION.sources[source], backend, request, "t", 5))


@pytest.mark.parametrize(
    "make",
    [
        lambda: PostgresBackend("CA-CSC", "postgresql://postgres@127.0.0.1:1/nothing"),
        lambda: MysqlBackend("CA-CSC", "mysql://root@127.0.0.1:1/nothing"),
    ],
)
def test_a_database_that_is_down_is_unavailable_naming_the_source(make):
    backend = make()
    try:
        with pytest.raises(SourceUnavailable, match=r"source CA-CSC: .*unreachable") as caught:
            run(backend)
        # what a servicer answers for it: UNAVAILABLE, naming the source
        code, message = grpc_status(caught.value)
        assert code == grpc.StatusCode.UNAVAILABLE and "source CA-CSC" in message
    finally:
        backend.close()


def test_a_missing_sqlite_file_is_unavailable_naming_the_source(tmp_path):
    with pytest.raises(SourceUnavailable, match="source CA-CSC"):
        run(SqliteBackend("CA-CSC", tmp_path / "gone.sqlite"))


def offenders_file(path: Path, rows: list[tuple[str, str | None]]) -> SqliteBackend:
    """CA-CSC's person table holding only (surname, date of birth) rows."""
    mapping = FEDERATION.sources["CA-CSC"].tables["offenders"]
    surname, dob = (mapping.columns[c].physical for c in ("surname", "birth_date"))
    with sqlite3.connect(path) as conn:
        conn.execute(f'CREATE TABLE "{mapping.physical_table}" ("{surname}" TEXT, "{dob}" TEXT)')
        conn.executemany(f'INSERT INTO "{mapping.physical_table}" VALUES (?, ?)', rows)
    return SqliteBackend("CA-CSC", path)


def answer(
    messages: list[adapter_pb2.ScanResponse],
) -> tuple[list[dict[str, object]], dict[str, int]]:
    """The rows of a scan's batches and its trailer's bad-value counts; the
    trailer comes last, once."""
    kinds = [m.WhichOneof("payload") for m in messages]
    assert kinds[0] == "header" and kinds[-1] == "trailer" and kinds.count("trailer") == 1
    rows = [
        row
        for m in messages
        if m.WhichOneof("payload") == "arrow_batch"
        for row in ipc.batch_from_bytes(m.arrow_batch).to_pylist()
    ]
    return rows, dict(messages[-1].trailer.bad_values)


def test_a_stored_value_that_does_not_fit_is_null_and_counted_not_an_error(tmp_path):
    # Before: the whole scan failed with "table offenders.birth_date: stored
    # value '12/05/1993' does not fit ...", the value itself in the message.
    backend = offenders_file(
        tmp_path / "oms.sqlite",
        [("Valid", "19800101"), ("Other", "12/05/1993"), ("Rolled", "19760931"), ("Null", None)],
    )
    request = adapter_pb2.ScanRequest(
        table="offenders", columns=["surname", "birth_date"], query_id="f"
    )
    rows, bad = answer(run(backend, request=request))
    assert rows == [
        {"surname": "Valid", "birth_date": dt.date(1980, 1, 1)},
        {"surname": "Other", "birth_date": None},
        {"surname": "Rolled", "birth_date": None},  # not 1976-10-01
        {"surname": "Null", "birth_date": None},
    ]
    assert bad == {"birth_date": 2}  # a stored NULL is no bad value


def test_a_scan_that_fits_has_an_empty_trailer(tmp_path):
    backend = offenders_file(tmp_path / "oms.sqlite", [("Valid", "19800101")])
    assert answer(run(backend)) == ([{"surname": "Valid"}], {})


def test_a_bad_value_in_a_release_filter_column_withholds_its_row(tmp_path):
    # The database compares the stored text: '12/05/1993' < '20060101' holds,
    # so the row passes a filter the adapter cannot know it would pass (its
    # date is unknown). The broker never sees the release filter, so it
    # cannot re-check: the adapter withholds the row, and counts the value,
    # even when the scan does not ask for the filter's column.
    source = FEDERATION.sources["CA-CSC"]
    released = source.release["offenders"]
    adults = dataclasses.replace(
        source,
        release={
            **source.release,
            "offenders": Release("offenders", released.columns, "birth_date < DATE '2006-01-01'"),
        },
    )
    backend = offenders_file(
        tmp_path / "oms.sqlite",
        [("Adult", "19800101"), ("Unknown", "12/05/1993"), ("Minor", "20100101")],
    )
    for columns in (["surname"], ["surname", "birth_date"]):
        request = adapter_pb2.ScanRequest(table="offenders", columns=columns, query_id="f")
        messages = list(scan(FEDERATION, adults, backend, request, "t", 5))
        rows, bad = answer(messages)
        assert [r["surname"] for r in rows] == ["Adult"]
        assert bad == {"birth_date": 1}
        assert all("12/05/1993" not in str(m) for m in messages)


def test_a_bad_value_under_a_pushed_predicate_reaches_the_broker_as_null(tmp_path):
    # The database passed the row on its stored text; the broker applies the
    # pushed predicate again to the NULL and drops it (see test_bad_values.py).
    backend = offenders_file(
        tmp_path / "oms.sqlite", [("Adult", "19800101"), ("Unknown", "12/05/1993")]
    )
    request = adapter_pb2.ScanRequest(
        table="offenders",
        columns=["surname", "birth_date"],
        predicate="birth_date < DATE '2006-01-01'",
        query_id="f",
    )
    messages = run(backend, request=request)
    # stored text that is not a date may fall in a text range: it only narrows
    assert list(messages[0].header.superset_predicates) == [
        "birth_date < CAST('2006-01-01' AS DATE)"
    ]
    rows, bad = answer(messages)
    assert [r["birth_date"] for r in rows] == [dt.date(1980, 1, 1), None]
    assert bad == {"birth_date": 1}


def test_wide_rows_go_as_several_messages_under_the_size_limit(tmp_path):
    # 40 surnames of 400 KB: one read batch of 16 MB, past the broker's
    # 16 MiB receive limit once framed; sent as messages of about 4 MiB.
    wide: list[tuple[str, str | None]] = [
        (f"{i:02d}" + "x" * 400_000, "19800101") for i in range(40)
    ]
    backend = offenders_file(tmp_path / "oms.sqlite", wide)
    request = adapter_pb2.ScanRequest(table="offenders", columns=["surname"], query_id="f")
    messages = run(backend, request=request)
    sizes = [len(m.arrow_batch) for m in messages if m.WhichOneof("payload") == "arrow_batch"]
    assert len(sizes) > 1 and max(sizes) < 5 * 1024 * 1024
    rows, bad = answer(messages)
    assert [r["surname"] for r in rows] == [s for s, _ in wide] and bad == {}
