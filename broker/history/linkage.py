"""Linking one person's files across systems without the FPS number.

Names are compared in a normalized form (:func:`features`): case, accents,
hyphens, apostrophes and particles ("de", "van", "St"/"Saint") do not
count, a compound surname shares its parts, given names are compared in
order and as a set (transposed given names), and a birth date also in its
day/month transposition.

The score is Fellegi-Sunter as Splink defines it: the model file
(``deploy/linkage-model.json``) is a Splink model, estimated offline on
the synthetic data by ``python -m app.linkage_model``; each comparison's
levels are DuckDB SQL conditions over the two records' features, each level
has m and u probabilities, and a pair's match weight is the prior's log-odds
plus the sum of log2(m/u) of the level each comparison falls in.
:class:`LinkageModel` evaluates that same SQL on DuckDB itself rather than
through Splink's ``Linker``, which costs hundreds of milliseconds to build
per request; ``tests/test_history_linkage.py`` checks the two agree.

Only columns the caller sees in clear are ever features: a masked or
withheld column is absent (``None``), and a comparison over it falls in its
null level, which carries no weight.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import yaml

from accord.errors import ConfigError
from accord.workdir import shipped

if TYPE_CHECKING:
    from pathlib import Path

#: Where the configuration lives: thresholds here, the model beside it.
DEFAULT_CONFIG = shipped("deploy") / "linkage.yaml"

#: Name particles that one system writes and another drops.
PARTICLES = frozenset(
    {"de", "du", "des", "d", "la", "le", "l", "van", "von", "der", "den", "del", "da", "di"}
)
#: Spellings of one token that mean the same ("St-Pierre", "Saint-Pierre").
SAME_TOKEN = {"st": "saint", "ste": "sainte", "mc": "mac"}

#: The columns of a record linkage may read, when the caller sees them in clear.
LINKAGE_COLUMNS = ("surname", "given_names", "birth_date", "birth_place")

#: The features each record is compared on, with their Arrow types.
FEATURE_SCHEMA = pa.schema(
    [
        ("unique_id", pa.string()),
        ("surname_key", pa.string()),
        ("surname_tokens", pa.list_(pa.string())),
        ("given_key", pa.string()),
        ("given_sorted", pa.string()),
        ("given_tokens", pa.list_(pa.string())),
        ("birth_date", pa.date32()),
        ("birth_date_swapped", pa.date32()),
        ("birth_place_key", pa.string()),
    ]
)

_NOT_LETTER = re.compile(r"[^a-z ]+")


def tokens(name: str | None) -> list[str]:
    """Lower-case ASCII words of a name: accents dropped, apostrophes joined
    ("O'Brien" is "obrien"), hyphens and other marks as spaces."""
    if not name:
        return []
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("'", "").replace("\u2019", "")
    words = _NOT_LETTER.sub(" ", text).split()
    return [SAME_TOKEN.get(w, w) for w in words]


def surname_tokens(surname: str | None) -> list[str]:
    """The words of a surname without its particles (kept if nothing else is left)."""
    words = tokens(surname)
    kept = [w for w in words if w not in PARTICLES]
    return kept or words


def swapped(date: dt.date | None) -> dt.date | None:
    """The date with day and month transposed, where that is another date."""
    if date is None or date.day > 12 or date.day == date.month:
        return None
    return dt.date(date.year, date.day, date.month)


def features(
    unique_id: str,
    surname: str | None,
    given_names: str | None,
    birth_date: dt.date | None,
    birth_place: str | None = None,
) -> dict[str, Any]:
    """One record's features (:data:`FEATURE_SCHEMA`); None where not known."""
    sur = surname_tokens(surname)
    given = tokens(given_names)
    place = tokens(birth_place)
    return {
        "unique_id": unique_id,
        "surname_key": "".join(sur) or None,
        "surname_tokens": sur or None,
        "given_key": " ".join(given) or None,
        "given_sorted": " ".join(sorted(given)) or None,
        "given_tokens": given or None,
        "birth_date": birth_date,
        "birth_date_swapped": swapped(birth_date),
        "birth_place_key": " ".join(place) or None,
    }


def feature_table(records: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(records, schema=FEATURE_SCHEMA)


@dataclass(frozen=True)
class Thresholds:
    """Match probabilities: at or above ``link`` the files are one person;
    from ``possible`` up to ``link``, a "possible match" shown apart."""

    link: float
    possible: float


@dataclass(frozen=True)
class Level:
    sql_condition: str
    null: bool
    bayes_factor: float  # m / u; 1 for the null level


@dataclass(frozen=True)
class Comparison:
    name: str
    levels: tuple[Level, ...]


class LinkageModel:
    """A Splink model (its settings JSON with m and u estimated), scored on DuckDB."""

    def __init__(self, model: dict[str, Any], thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        prior = float(model["probability_two_random_records_match"])
        self.prior_weight = math.log2(prior / (1 - prior))
        self.comparisons = tuple(_comparison(c) for c in model["comparisons"])
        self._sql = self._scoring_sql()
        self._db = duckdb.connect(":memory:")
        self._lock = threading.Lock()  # one connection, one query at a time

    @classmethod
    def load(cls, config: Path = DEFAULT_CONFIG) -> LinkageModel:
        try:
            settings = yaml.safe_load(config.read_text())
            model_path = config.parent / settings["model"]
            model = json.loads(model_path.read_text())
            thresholds = Thresholds(
                float(settings["link_probability"]), float(settings["possible_probability"])
            )
        except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"the linkage configuration {config} is unusable: {exc}") from exc
        if not 0 < thresholds.possible < thresholds.link < 1:
            raise ConfigError(f"{config}: need 0 < possible_probability < link_probability < 1")
        return cls(model, thresholds)

    def weight_sql(self) -> str:
        """The match weight of a pair as one SQL expression over the two
        records' features, named ``<feature>_l`` and ``<feature>_r``."""
        weights = [repr(self.prior_weight)]
        for comparison in self.comparisons:
            cases = " ".join(
                f"WHEN {level.sql_condition} THEN {math.log2(level.bayes_factor)!r}"
                for level in comparison.levels
                if level.sql_condition.upper() != "ELSE"
            )
            otherwise = next(
                (
                    math.log2(level.bayes_factor)
                    for level in comparison.levels
                    if level.sql_condition.upper() == "ELSE"
                ),
                0.0,
            )
            weights.append(f"(CASE {cases} ELSE {otherwise!r} END)")
        return " + ".join(weights)

    def _scoring_sql(self) -> str:
        columns = FEATURE_SCHEMA.names
        pairs = ", ".join(
            [f'l."{c}" AS "{c}_l"' for c in columns] + [f'r."{c}" AS "{c}_r"' for c in columns]
        )
        return (
            f"SELECT unique_id_l, unique_id_r, {self.weight_sql()} AS match_weight "
            f"FROM (SELECT {pairs} FROM left_records l CROSS JOIN right_records r)"
        )

    def match_weights(self, left: pa.Table, right: pa.Table) -> dict[tuple[str, str], float]:
        """Every (left, right) pair's match weight, by their unique ids."""
        if left.num_rows == 0 or right.num_rows == 0:
            return {}
        with self._lock:
            db = self._db
            db.register("left_records", left)
            db.register("right_records", right)
            try:
                found = db.execute(self._sql).fetchall()
            finally:
                db.unregister("left_records")
                db.unregister("right_records")
        return {(a, b): float(w) for a, b, w in found}

    def probabilities(self, left: pa.Table, right: pa.Table) -> dict[tuple[str, str], float]:
        return {pair: probability(w) for pair, w in self.match_weights(left, right).items()}


def probability(match_weight: float) -> float:
    """Splink's match probability of a match weight (log2 odds)."""
    if match_weight > 60:
        return 1.0
    odds = 2.0**match_weight
    return float(odds / (1 + odds))


def _comparison(spec: dict[str, Any]) -> Comparison:
    levels = []
    for level in spec["comparison_levels"]:
        null = bool(level.get("is_null_level"))
        m, u = level.get("m_probability"), level.get("u_probability")
        # A level the estimation never saw carries no evidence either way.
        factor = 1.0 if null or not m or not u else float(m) / float(u)
        levels.append(Level(level["sql_condition"], null, factor))
    return Comparison(spec["output_column_name"], tuple(levels))
