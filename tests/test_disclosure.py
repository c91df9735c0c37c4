"""The release of aggregate-only answers (``broker.policy.disclosure``)
without gRPC: random rounding, its draws, small-group suppression, and the
role file's settings."""

from __future__ import annotations

import shutil
from decimal import Decimal
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.policy.disclosure import Output, ReleaseSpec, draw, release, release_key, rounded
from broker.policy.store import check_policies
from tests import inprocess
from tests.conftest import POLICY_FIXTURES
from tests.inprocess import FEDERATION

if TYPE_CHECKING:
    from pathlib import Path

bases = st.integers(min_value=1, max_value=1000)
units = st.floats(min_value=0, max_value=1, exclude_max=True)


@given(st.integers(min_value=-(10**12), max_value=10**12), bases, units)
def test_rounding_lands_on_a_neighbouring_multiple(value, base, u):
    got = rounded(value, base, u)
    assert got % base == 0 and abs(got - value) < base
    assert (
        got == value
        if value % base == 0
        else got in (value - value % base, value - value % base + base)
    )


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=2, max_value=50))
def test_rounding_is_right_on_average(value, base):
    """Over the draws, up with probability remainder/base: the mean is the value."""
    draws = [i / 1000 for i in range(1000)]
    mean = sum(rounded(value, base, u) for u in draws) / len(draws)
    assert abs(mean - value) <= base / 1000 + 1e-9


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), bases, units)
def test_rounding_a_float_agrees_with_rounding_an_integer(value, base, u):
    got = rounded(value, base, u)
    # within the base up to float precision (1 - 1e-300 reads as 1)
    assert isinstance(got, float) and got % base == 0 and abs(got - value) <= base
    if value == int(value):
        assert got == rounded(int(value), base, u)


def test_decimal_and_int_sums_draw_alike():
    """DuckDB gives a SUM of integers as a DECIMAL: the same cell, the same draw."""
    key = release_key(b"secret", "statistics")
    assert draw(key, [7], "sum", 365, Decimal(1234)) == draw(key, [7], "sum", 365, 1234)
    assert draw(key, [7], "sum", 365, 1234) != draw(key, [8], "sum", 365, 1234)
    assert draw(key, [7], "count", 5, 12) != draw(
        release_key(b"other", "statistics"), [7], "count", 5, 12
    )


def _table(counts: list[int], persons: list[int], cells: list[int]) -> pa.Table:
    return pa.table(
        {
            "g": pa.array([f"g{i}" for i in range(len(counts))]),
            "n": pa.array(counts, pa.int64()),
            "__accord_persons_1": pa.array(persons, pa.int64()),
            "__accord_cell_1": pa.array(cells, pa.uint64()),
        }
    )


SPEC = ReleaseSpec((Output("dimension"), Output("count", 5)), 5, 5, (2,), (3,))


def test_release_withholds_small_and_empty_groups_alike():
    table = _table([12, 3, 0, 40], [6, 3, 0, 5], [1, 2, 3, 4])
    kept, withheld = release(table, SPEC, b"key")
    assert kept.column_names == ["g", "n"] and withheld == 2
    assert kept.column("g").to_pylist() == ["g0", "g3"]
    for got, true in zip(kept.column("n").to_pylist(), [12, 40], strict=True):
        assert got % 5 == 0 and abs(got - true) < 5


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 2**64 - 1)), max_size=20))
def test_release_depends_on_the_cell_not_on_the_row_around_it(cells):
    """Computed two ways: a table released whole, and each row released on
    its own, give the same values (a draw depends on its cell only)."""
    counts = [n for n, _ in cells]
    table = _table(counts, [max(n, 5) for n in counts], [c for _, c in cells])
    whole, _ = release(table, SPEC, b"key")
    one_by_one = [release(table.slice(i, 1), SPEC, b"key")[0] for i in range(table.num_rows)]
    assert whole.column("n").to_pylist() == [t.column("n")[0].as_py() for t in one_by_one]


def test_an_average_is_the_released_sum_over_the_released_count():
    asked = inprocess.broker_answer(
        "SELECT sentence_type, count(length_days), sum(length_days), avg(length_days) "
        "FROM sentences GROUP BY sentence_type ORDER BY sentence_type",
        "statistics",
    )
    assert asked[1], "no groups released from the small data"
    for _, count, total, mean in asked[1]:
        assert mean == (None if total is None or not count else round(total / count, 9))


# --- the role file ------------------------------------------------------------------------


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICY_FIXTURES, target)
    return target


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("min_group_size: 2\n", "min_group_size: 2\nrounding_base: 0\n", "positive integer"),
        ("min_group_size: 2\n", "min_group_size: 2\nrounding_base: five\n", "positive integer"),
        (
            "    dimensions: [status, birth_date, gender]\n",
            "    dimensions: [status, birth_date, gender]\n    measures: {surname: 10}\n",
            "not a granted column",
        ),
        (
            "    dimensions: [status, birth_date, gender]\n",
            "    dimensions: [status, birth_date, gender]\n    measures: {birth_date: 0}\n",
            "positive integer",
        ),
        (
            "    dimensions: [status, birth_date, gender]\n",
            "    dimensions: [status, birth_date, gender]\n    measures: [birth_date]\n",
            "maps columns",
        ),
    ],
)
def test_disclosure_settings_are_checked(policy_dir, old, new, problem):
    path = policy_dir / "roles" / "analyst.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    policy, problems = check_policies(policy_dir, FEDERATION)
    assert policy is None
    assert any(problem in p and "analyst.yaml:" in p for p in problems), problems


def test_disclosure_settings_apply_to_aggregate_only_roles_only(policy_dir):
    path = policy_dir / "roles" / "clerk.yaml"
    path.write_text("rounding_base: 5\n" + path.read_text())
    policy, problems = check_policies(policy_dir, FEDERATION)
    assert policy is None
    assert any("only applies to aggregate_only roles" in p for p in problems), problems
