"""The history's linkage: normalization, the name and date variants it must
absorb, and the broker's scorer agreeing with Splink's own on the same model."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.history.linkage import (
    DEFAULT_CONFIG,
    LinkageModel,
    feature_table,
    features,
    surname_tokens,
    swapped,
    tokens,
)

MODEL = LinkageModel.load()
BORN = dt.date(1979, 4, 7)


def score(a: dict[str, object], b: dict[str, object]) -> float:
    left, right = feature_table([a]), feature_table([b])
    return MODEL.probabilities(left, right)[(a["unique_id"], b["unique_id"])]  # type: ignore[index]


def person(uid: str, surname: str, given_names: str, born: dt.date = BORN) -> dict[str, object]:
    return features(uid, surname, given_names, born, None)


def test_normalization_drops_case_accents_hyphens_apostrophes_and_particles() -> None:
    assert tokens("Marie-Ève") == ["marie", "eve"]
    assert surname_tokens("O'Brien") == ["obrien"]
    assert surname_tokens("D'Amours") == surname_tokens("DAMOURS") == ["damours"]
    assert surname_tokens("De La Cruz") == ["cruz"]
    assert surname_tokens("St-Pierre") == surname_tokens("Saint Pierre") == ["saint", "pierre"]
    assert surname_tokens("Le") == ["le"]  # a surname that is all particle stays


def test_day_month_swap_only_where_it_is_another_date() -> None:
    assert swapped(dt.date(1979, 4, 7)) == dt.date(1979, 7, 4)
    assert swapped(dt.date(1979, 4, 13)) is None
    assert swapped(dt.date(1979, 4, 4)) is None


@pytest.mark.parametrize(
    ("surname", "given_names", "born"),
    [
        ("COTE", "JEAN MARC", BORN),  # capitals, accents dropped
        ("Côté", "Marc Jean", BORN),  # given names transposed
        ("Côté", "Jean", BORN),  # the middle name dropped
        ("Coté", "Jean Marc", BORN),  # one accent lost
        ("Côté", "Jean Marc", dt.date(1979, 7, 4)),  # day and month swapped
        ("Cote-Roy", "Jean Marc", BORN),  # a compound surname
    ],
)
def test_variants_of_one_person_link(surname: str, given_names: str, born: dt.date) -> None:
    anchor = person("a", "Côté", "Jean Marc")
    assert score(anchor, person("b", surname, given_names, born)) >= MODEL.thresholds.link


@pytest.mark.parametrize(
    ("surname", "given_names"),
    [("Tremblay", "Luc"), ("Côté", "Sophie"), ("Smith", "Jean Marc")],
)
def test_other_people_born_the_same_day_do_not_link(surname: str, given_names: str) -> None:
    anchor = person("a", "Côté", "Jean Marc")
    assert score(anchor, person("b", surname, given_names)) < MODEL.thresholds.possible


def test_absent_features_carry_no_weight() -> None:
    """A masked or withheld column is None: its comparison is the null level,
    which neither adds nor removes evidence."""
    a, b = person("a", "Côté", "Jean Marc"), person("b", "Côté", "Jean Marc")
    no_names = {**b, **{k: None for k in b if k.startswith(("surname", "given"))}}
    assert score(a, no_names) == pytest.approx(score({**a, "surname_key": None}, no_names))
    assert score(a, no_names) < MODEL.thresholds.possible  # a birth date alone is no link


NAMES = st.sampled_from(
    ["Côté", "Cote", "COTE", "Tremblay", "Roy-Tremblay", "Roy", "O'Brien", "OBrien", "Gagnon", ""]
)
GIVEN = st.sampled_from(
    ["Jean Marc", "Marc Jean", "Jean", "Marie-Ève", "Marie Eve", "Luc", "Sean Patrick", ""]
)
DATES = st.sampled_from(
    [BORN, dt.date(1979, 7, 4), dt.date(1980, 4, 7), dt.date(1979, 4, 8), dt.date(2001, 1, 2)]
)
PLACES = st.sampled_from(["Québec, QC", "Quebec QC", "Regina, SK", None])


@pytest.fixture(scope="module")
def splink_linker() -> Any:
    from splink import Linker
    from splink.backends.duckdb import DuckDBAPI

    model = json.loads((DEFAULT_CONFIG.parent / "linkage-model.json").read_text())
    seed = feature_table([features("seed", "x", "y", BORN)])
    db_api = DuckDBAPI()
    return Linker(db_api.register(seed), model, log_level=logging.WARNING)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(NAMES, GIVEN, DATES, PLACES), min_size=1, max_size=4),
    st.lists(st.tuples(NAMES, GIVEN, DATES, PLACES), min_size=1, max_size=4),
)
def test_the_broker_scores_as_splink_does(
    splink_linker: Any, left: list[Any], right: list[Any]
) -> None:
    """Two computations of one model: Splink's own scoring and the broker's SQL."""
    lefts = [features(f"l{i}", *r) for i, r in enumerate(left)]
    rights = [features(f"r{i}", *r) for i, r in enumerate(right)]
    ours = MODEL.match_weights(feature_table(lefts), feature_table(rights))
    theirs = splink_linker.inference.score_pairs(
        pa.Table.from_pylist(lefts, schema=feature_table([]).schema).to_pylist(),
        pa.Table.from_pylist(rights, schema=feature_table([]).schema).to_pylist(),
    ).as_record_list()
    assert len(theirs) == len(ours)
    for row in theirs:
        pair = (row["unique_id_l"], row["unique_id_r"])
        assert ours[pair] == pytest.approx(row["match_weight"], abs=1e-6), pair


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["Côté", "Roy", "Tremblay", "O'Brien", "Gagnon", "Lévesque"]),
        min_size=1,
        max_size=2,
    ),
    st.sampled_from([str.upper, str.lower, str.title, lambda s: s]),
    st.sampled_from(["-", " "]),
)
def test_features_ignore_case_accents_and_hyphens(parts, case, joiner) -> None:
    """One name written in capitals, without accents, hyphenated or spaced has
    the same surname features (and so the same score against anyone)."""
    from adapters.datagen.common import strip_accents

    written = joiner.join(parts)
    variants = {case(written), strip_accents(written), "-".join(parts), " ".join(parts).upper()}
    keys = {
        (f["surname_key"], tuple(f["surname_tokens"]))
        for f in (features("x", v, "Jean", BORN) for v in variants)
    }
    assert len(keys) == 1


def test_the_model_re_estimates_from_the_synthetic_data(tmp_path) -> None:
    """`python -m app.linkage_model` on a small federation writes a model the
    broker loads, and it tells a variant of one person from a stranger."""
    from app.linkage_model import main

    out = tmp_path / "model.json"
    assert main(["--scale", "0.004", "--seed", "5", "--out", str(out)]) == 0
    model = LinkageModel(json.loads(out.read_text()), MODEL.thresholds)
    anchor = feature_table([person("a", "Côté", "Jean Marc")])
    variant = feature_table([person("b", "COTE", "Marc Jean")])
    stranger = feature_table([person("c", "Tremblay", "Luc")])
    assert model.probabilities(anchor, variant)[("a", "b")] >= MODEL.thresholds.link
    assert model.probabilities(anchor, stranger)[("a", "c")] < MODEL.thresholds.possible
