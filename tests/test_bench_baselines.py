"""The bench's two baselines answer the same questions alike: one sqlite3
connection per source file (the physical SQL from the federation's mapping)
and one DuckDB over the generated logical tables; so do their W2 readings
of what the history reads (``*_linked``) and their W3 analytics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION
from adapters.datagen import generate, write_federation_data
from bench.workloads import Direct, Single

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SCALE, SEED = 0.002, 5


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Direct, Single, list[str]]]:
    root: Path = tmp_path_factory.mktemp("bench-data")
    federation = load_federation(DEFAULT_FEDERATION)
    write_federation_data(federation, root, seed=SEED, scale=SCALE)
    generated = generate(federation, seed=SEED, scale=SCALE)
    people = sorted(
        {
            fps
            for tables in generated.values()
            for fps in tables["offenders"].column("fps_number").to_pylist()
            if fps
        }
    )
    direct, single = Direct(federation, root), Single(generated)
    yield direct, single, people
    direct.close()
    single.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(index=st.integers(min_value=0), workload=st.sampled_from(["W1-crown", "W2-history"]))
def test_direct_and_single_agree_per_person(
    engines: tuple[Direct, Single, list[str]], index: int, workload: str
) -> None:
    direct, single, people = engines
    fps = people[index % len(people)]
    assert direct.answer(workload, fps) == single.answer(workload, fps)


def test_a_known_person_is_found_and_an_unknown_one_is_not(
    engines: tuple[Direct, Single, list[str]],
) -> None:
    direct, single, people = engines
    assert direct.answer("W1-crown", people[0]) >= 1
    assert direct.answer("W1-crown", "000000Z") == single.answer("W1-crown", "000000Z") == 0


def test_bulk_agrees(engines: tuple[Direct, Single, list[str]]) -> None:
    direct, single, _ = engines
    assert direct.answer("W4-bulk", "") == single.answer("W4-bulk", "") > 0


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(index=st.integers(min_value=0))
def test_the_linked_history_baselines_agree_per_person(
    engines: tuple[Direct, Single, list[str]], index: int
) -> None:
    direct, single, people = engines
    fps = people[index % len(people)]
    linked = direct.history_linked(fps)
    assert linked == single.history_linked(fps)
    # the block of files born on the person's dates holds the person's own files
    assert linked >= direct.answer("W2-history", fps) + direct.answer("W1-crown", fps)


@pytest.mark.parametrize("workload", ["W3-join", "W3-statistics"])
def test_the_analytics_agree(engines: tuple[Direct, Single, list[str]], workload: str) -> None:
    direct, single, _ = engines
    got, want = (
        sorted(direct.analytics(workload), key=repr),
        sorted(single.analytics(workload), key=repr),
    )
    assert got == want
    assert want
