"""adapters/convert.py: a stored value that does not fit the logical model is
NULL and marked bad, never an error and never a silently different value."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.federation import ColumnMapping, LogicalTable, TableMapping, load_federation
from accord.workdir import DEFAULT_FEDERATION
from adapters.convert import column_converters, parse_dates, print_dates, to_logical

FEDERATION = load_federation(DEFAULT_FEDERATION)

#: Every date format a source in the embedded federation declares.
DATE_FORMATS = sorted(
    {
        held.date_format
        for source in FEDERATION.sources.values()
        for mapping in source.tables.values()
        for held in mapping.columns.values()
        if held.date_format
    }
)

TABLE = LogicalTable(
    "t",
    {"d": "DATE", "iso": "DATE", "code": "VARCHAR", "n": "BIGINT", "x": "DOUBLE", "s": "VARCHAR"},
)
MAPPING = TableMapping(
    "t",
    "T",
    {
        "d": ColumnMapping("d", "D", date_format="%Y/%m/%d"),
        "iso": ColumnMapping("iso", "ISO"),
        "code": ColumnMapping("code", "C", codes={"C": "IN_CUSTODY", "S": "SUPERVISED"}),
        "n": ColumnMapping("n", "N"),
        "x": ColumnMapping("x", "X"),
        "s": ColumnMapping("s", "S"),
    },
)


def convert(column: str, values: list[object]) -> tuple[list[object], list[bool]]:
    """(logical values, bad flags) of one column's stored values."""
    stored = pa.RecordBatch.from_arrays([pa.array(values)], names=["c0"])
    out = to_logical(
        stored, TABLE.arrow_schema([column]), column_converters(TABLE, MAPPING, [column])
    )
    mask = out.bad.get(column)
    flags = mask.to_pylist() if mask is not None else [False] * len(values)
    return out.batch.column(0).to_pylist(), flags


def test_the_embedded_federation_declares_date_formats():
    assert "%Y%m%d" in DATE_FORMATS and len(DATE_FORMATS) >= 4


@pytest.mark.parametrize(
    "text",
    [
        "1976/09/31",  # September has 30 days: Arrow alone reads 1976-10-01
        "2023/02/29",  # 2023 is not a leap year
        "1900/02/29",  # nor is 1900
        "2023/13/01",  # no 13th month
        "2023/00/10",
        "2023/01/32",
        "12/05/1993",  # another format
        "",
        " 2020/01/01",
        "2020/01/01 junk",
        "not a date",
    ],
)
def test_an_impossible_or_malformed_date_is_null_and_bad(text):
    assert convert("d", [text, "2024/02/29", None]) == (
        [None, dt.date(2024, 2, 29), None],
        [True, False, False],
    )


@pytest.mark.parametrize("text", ["2023-02-29", "1976-09-31", "2023-13-01", "20230101", "x"])
def test_an_impossible_iso_date_is_null_and_bad(text):
    assert convert("iso", ["2000-01-31", text]) == ([dt.date(2000, 1, 31), None], [False, True])


def test_native_dates_pass_through():
    assert convert("iso", [dt.date(1999, 12, 31), None]) == (
        [dt.date(1999, 12, 31), None],
        [False, False],
    )


def test_an_unpadded_date_is_read_as_python_reads_it():
    assert convert("d", ["2020/1/2"]) == ([dt.date(2020, 1, 2)], [False])


def test_an_unknown_code_is_null_and_bad_not_passed_through():
    assert convert("code", ["C", "Z", None, "c", "S"]) == (
        ["IN_CUSTODY", None, None, None, "SUPERVISED"],
        [False, True, False, True, False],
    )


@pytest.mark.parametrize(
    ("values", "expected", "bad"),
    [
        (["12", "x"], [12, None], [False, True]),  # text in a numeric column
        ([1e30, 2.0], [None, 2], [True, False]),  # out of BIGINT's range
        ([2.5, 3.0], [None, 3], [True, False]),  # not a whole number
        ([2**63 - 1, None], [2**63 - 1, None], [False, False]),
    ],
)
def test_a_number_that_does_not_fit_is_null_and_bad(values, expected, bad):
    assert convert("n", values) == (expected, bad)


def test_text_in_a_double_column_is_null_and_bad():
    assert convert("x", ["1.5", "one and a half"]) == ([1.5, None], [False, True])


def test_text_columns_take_numbers_as_text():
    assert convert("s", [7, 8]) == (["7", "8"], [False, False])


def test_counts_are_per_column():
    stored = pa.RecordBatch.from_arrays(
        [pa.array(["1976/09/31", "2000/01/01", "x"]), pa.array(["C", "Q", "R"])],
        names=["c0", "c1"],
    )
    out = to_logical(
        stored, TABLE.arrow_schema(["d", "code"]), column_converters(TABLE, MAPPING, ["d", "code"])
    )
    assert out.counts() == {"d": 2, "code": 2}


def test_a_batch_that_fits_reports_nothing():
    stored = pa.RecordBatch.from_arrays([pa.array(["2000/01/01", None])], names=["c0"])
    out = to_logical(stored, TABLE.arrow_schema(["d"]), column_converters(TABLE, MAPPING, ["d"]))
    assert out.bad == {} and out.counts() == {}


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    fmt=st.sampled_from(DATE_FORMATS),
    dates=st.lists(
        st.dates(min_value=dt.date(1000, 1, 1), max_value=dt.date(9999, 12, 31)), max_size=20
    ),
)
def test_valid_dates_round_trip_through_every_declared_format(fmt, dates):
    text = pa.array([d.strftime(fmt) for d in dates], pa.string())
    assert parse_dates(text, fmt).to_pylist() == dates


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    fmt=st.sampled_from(DATE_FORMATS),
    parts=st.lists(
        st.tuples(st.integers(1000, 9999), st.integers(0, 13), st.integers(0, 32)),
        max_size=20,
    ),
)
def test_any_stored_date_is_read_as_python_strptime_reads_it(fmt, parts):
    # Day, month and year each in or just out of range: the kernel and
    # datetime.strptime agree on every one, impossible dates included.
    texts = [
        fmt.replace("%Y", f"{y:04d}").replace("%m", f"{m:02d}").replace("%d", f"{d:02d}")
        for y, m, d in parts
    ]
    expected: list[dt.date | None] = []
    for t in texts:
        try:
            expected.append(dt.datetime.strptime(t, fmt).date())
        except ValueError:
            expected.append(None)
    assert parse_dates(pa.array(texts, pa.string()), fmt).to_pylist() == expected


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    fmt=st.sampled_from(
        [*DATE_FORMATS, "%d.%m.%Y", "%Y", "%d %b %Y", "%%Y%m", "day %d", "%Y--%m--%d", "%Y-%m/%d"]
    ),
    dates=st.lists(
        st.one_of(st.none(), st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31))),
        max_size=20,
    ),
)
def test_composed_printing_of_dates_equals_arrow_strftime(fmt, dates):
    # The strictness check prints parsed dates back; composing the fields
    # must print exactly what Arrow's strftime prints, padding and NULLs included.
    stamps = pc.cast(pa.array(dates, pa.date32()), pa.timestamp("s"))
    assert print_dates(stamps, fmt).to_pylist() == pc.strftime(stamps, format=fmt).to_pylist()
