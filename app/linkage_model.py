"""Estimates the history's linkage model offline, with Splink on DuckDB.

    python -m app.linkage_model                 # rewrites deploy/linkage-model.json
    python -m app.linkage_model --scale 0.05 --seed 3 --out /tmp/model.json

The training data is the synthetic federation (``adapters.datagen``), every
system's person files with their name and date variants: m probabilities
from the pairs the FPS number says are one person
(``estimate_m_from_label_column``), u probabilities from random pairs, the
prior from the FPS number's deterministic links (whose recall is the share
of true pairs where both files carry it). The broker reads the saved model
and scores with it (``broker.history.linkage``); the thresholds are in
``deploy/linkage.yaml``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION
from adapters.datagen import generate, person_truth
from broker.history.linkage import DEFAULT_CONFIG, features

if TYPE_CHECKING:
    import pyarrow as pa

#: Splink's settings: the comparisons whose SQL the broker evaluates.
JW = "jaro_winkler_similarity"


def comparisons() -> list[Any]:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    surname = cl.CustomComparison(
        output_column_name="surname",
        comparison_levels=[
            cll.NullLevel("surname_key"),
            cll.ExactMatchLevel("surname_key"),
            cll.CustomLevel(
                'list_has_any("surname_tokens_l", "surname_tokens_r")', "a part in common"
            ),
            cll.JaroWinklerLevel("surname_key", 0.92),
            cll.JaroWinklerLevel("surname_key", 0.80),
            cll.ElseLevel(),
        ],
    )
    given = cl.CustomComparison(
        output_column_name="given_names",
        comparison_levels=[
            cll.NullLevel("given_key"),
            cll.ExactMatchLevel("given_key"),
            cll.CustomLevel('"given_sorted_l" = "given_sorted_r"', "the same names, transposed"),
            cll.CustomLevel('"given_tokens_l"[1] = "given_tokens_r"[1]', "the same first name"),
            cll.CustomLevel(
                'list_has_any("given_tokens_l", "given_tokens_r")', "a given name in common"
            ),
            cll.JaroWinklerLevel("given_key", 0.88),
            cll.ElseLevel(),
        ],
    )
    birth = cl.CustomComparison(
        output_column_name="birth_date",
        comparison_levels=[
            cll.NullLevel("birth_date"),
            cll.ExactMatchLevel("birth_date"),
            cll.CustomLevel('"birth_date_l" = "birth_date_swapped_r"', "day and month swapped"),
            cll.CustomLevel(
                'abs(date_diff(\'day\', "birth_date_l", "birth_date_r")) <= 366', "within a year"
            ),
            cll.ElseLevel(),
        ],
    )
    place = cl.CustomComparison(
        output_column_name="birth_place",
        comparison_levels=[
            cll.NullLevel("birth_place_key"),
            cll.ExactMatchLevel("birth_place_key"),
            cll.ElseLevel(),
        ],
    )
    return [surname, given, birth, place]


def settings() -> Any:
    from splink import SettingsCreator, block_on
    from splink.blocking_rule_library import CustomRule

    return SettingsCreator(
        link_type="dedupe_only",
        comparisons=comparisons(),
        # What the broker fetches to compare: the same birth date, or its swap.
        blocking_rules_to_generate_predictions=[
            block_on("birth_date"),
            CustomRule("l.birth_date = r.birth_date_swapped"),
        ],
        retain_intermediate_calculation_columns=False,
    )


def training_records(
    generated: dict[str, dict[str, pa.Table]], truth: dict[tuple[str, str], str]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every person file as features (its unique id ``SOURCE/FILE``) with the
    FPS number it carries (``fps_number``), and the truth: id -> person."""
    records, persons = [], {}
    for code, tables in generated.items():
        for row in tables["offenders"].to_pylist():
            pid = row["source_person_id"]
            uid = f"{code}/{pid}"
            record = features(
                uid, row["surname"], row["given_names"], row["birth_date"], row["birth_place"]
            )
            record["fps_number"] = row["fps_number"]
            records.append(record)
            if (code, pid) in truth:
                persons[uid] = truth[(code, pid)]
    return records, persons


def estimate(seed: int, scale: float) -> dict[str, Any]:
    import pyarrow as pa
    from splink import Linker, block_on
    from splink.backends.duckdb import DuckDBAPI

    federation = load_federation(DEFAULT_FEDERATION)
    generated = generate(federation, seed=seed, scale=scale)
    records, persons = training_records(generated, person_truth(federation, seed=seed, scale=scale))
    with_fps = [r for r in records if r["fps_number"]]
    table = pa.Table.from_pylist(records)
    db_api = DuckDBAPI()
    linker = Linker(db_api.register(table), settings(), log_level=logging.WARNING)
    # The FPS number finds the pairs where both files carry it: that share of all true pairs.
    share = len(with_fps) / len(records)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("fps_number")], recall=round(share * share, 3)
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=2_000_000, seed=seed)
    linker.training.estimate_m_from_label_column("fps_number")
    model: dict[str, Any] = linker.misc.save_model_to_json()
    groups = Counter(r["fps_number"] for r in with_fps)
    labelled = sum(n * (n - 1) // 2 for n in groups.values())
    smooth_unseen_levels(model, labelled)
    print(
        f"estimated on {len(records)} files of {len(set(persons.values()))} persons, "
        f"{labelled} pairs labelled by the FPS number"
    )
    return model


def smooth_unseen_levels(model: dict[str, Any], labelled_pairs: int) -> None:
    """A level no labelled pair fell in (a birth date years apart) gets half a
    pair's worth of m rather than none, and each comparison's m sums to 1
    again: otherwise Splink leaves it untrained, which would make the
    strongest evidence against a match count for nothing."""
    floor = 0.5 / max(labelled_pairs, 1)
    for comparison in model["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        for level in levels:
            if not level.get("m_probability"):
                level["m_probability"] = floor
        total = sum(level["m_probability"] for level in levels)
        for level in levels:
            level["m_probability"] /= total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=DEFAULT_CONFIG.parent / "linkage-model.json")
    args = parser.parse_args(argv)
    model = estimate(args.seed, args.scale)
    args.out.write_text(json.dumps(model, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
