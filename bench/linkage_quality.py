"""Precision, recall and F1 of the history's linkage against the truth.

The synthetic federation (another seed than the model was estimated on)
knows which files are one person (``adapters.datagen.person_truth``). The
pairs compared are those the broker compares: files born on the same date
or on its day/month swap. Scored are the pairs the FPS number cannot decide
(at least one file lacks it), by:

- the model (``deploy/linkage-model.json``) at the link threshold, and at
  the possible threshold (what a reader is shown, linked or possible);
- a plain Jaro-Winkler rule as the baseline: Jaro-Winkler similarity of the
  lower-cased surname >= 0.9 and of the given names >= 0.9, same birth date.

    .venv/bin/python bench/linkage_quality.py [--seed 7] [--scale 0.05]
"""

from __future__ import annotations

import argparse
import time

import duckdb
import pyarrow as pa

from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION
from adapters.datagen import generate, person_truth
from app.linkage_model import training_records
from broker.history.linkage import FEATURE_SCHEMA, LinkageModel

BASELINE = (
    "jaro_winkler_similarity(lower(l.surname), lower(r.surname)) >= 0.9 "
    "AND jaro_winkler_similarity(lower(l.given_names), lower(r.given_names)) >= 0.9 "
    "AND l.birth_date = r.birth_date"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=0.05)
    args = parser.parse_args()
    started = time.monotonic()
    federation = load_federation(DEFAULT_FEDERATION)
    generated = generate(federation, seed=args.seed, scale=args.scale)
    truth = person_truth(federation, seed=args.seed, scale=args.scale)
    records, persons = training_records(generated, truth)
    raw = {
        f"{code}/{row['source_person_id']}": row
        for code, tables in generated.items()
        for row in tables["offenders"].to_pylist()
    }
    for record in records:
        row = raw[record["unique_id"]]
        record["person"] = persons.get(record["unique_id"])
        record["surname"], record["given_names"] = row["surname"], row["given_names"]
    schema = FEATURE_SCHEMA.append(pa.field("fps_number", pa.string()))
    schema = schema.append(pa.field("person", pa.string()))
    schema = schema.append(pa.field("surname", pa.string()))
    schema = schema.append(pa.field("given_names", pa.string()))
    table = pa.Table.from_pylist(records, schema=schema)
    model = LinkageModel.load()
    columns = [*FEATURE_SCHEMA.names, "fps_number", "person", "surname", "given_names"]
    db = duckdb.connect()
    db.register("files", table)
    suffixed = ", ".join(
        [f'l."{c}" AS "{c}_l"' for c in columns] + [f'r."{c}" AS "{c}_r"' for c in columns]
    )
    db.execute(
        f"""CREATE TABLE pairs AS
        SELECT {suffixed},
               l.person IS NOT NULL AND l.person = r.person AS same,
               {BASELINE} AS baseline
        FROM files l JOIN files r
          ON l.unique_id < r.unique_id
         AND (l.birth_date = r.birth_date OR l.birth_date = r.birth_date_swapped)
        WHERE l.fps_number IS NULL OR r.fps_number IS NULL"""
    )
    db.execute("ALTER TABLE pairs ADD COLUMN weight DOUBLE")
    db.execute(f"UPDATE pairs SET weight = {model.weight_sql()}")
    db.execute("ALTER TABLE pairs ADD COLUMN p DOUBLE")
    db.execute(
        "UPDATE pairs SET p = CASE WHEN weight > 60 THEN 1 "
        "ELSE pow(2, weight) / (1 + pow(2, weight)) END"
    )
    (pairs, true_pairs) = db.execute(
        "SELECT count(*), count(*) FILTER (same) FROM pairs"
    ).fetchone() or (0, 0)
    thresholds = model.thresholds
    # True pairs the FPS number cannot decide, blocked or not: what blocking loses.
    groups: dict[str, list[bool]] = {}
    for record in records:
        if record["person"] is not None:
            groups.setdefault(record["person"], []).append(record["fps_number"] is not None)
    all_true = sum(len(g) * (len(g) - 1) // 2 - sum(g) * (sum(g) - 1) // 2 for g in groups.values())
    rules = {
        f"model, link (p >= {thresholds.link})": f"p >= {thresholds.link}",
        f"model, link or possible (p >= {thresholds.possible})": f"p >= {thresholds.possible}",
        "baseline: Jaro-Winkler >= 0.9 on both names, same birth date": "baseline",
    }
    print(
        f"{len(records)} files of {len(set(persons.values()))} persons (seed {args.seed}, "
        f"scale {args.scale}); {pairs} pairs compared that the FPS number cannot decide, "
        f"{true_pairs} of them one person (blocking on the birth date and its swap keeps "
        f"{true_pairs} of the {all_true} true pairs)"
    )
    print(f"{'rule':<62} {'precision':>9} {'recall':>7} {'F1':>6} {'TP':>6} {'FP':>5} {'FN':>5}")
    for name, rule in rules.items():
        tp, fp, fn = db.execute(
            f"SELECT count(*) FILTER (same AND ({rule})), count(*) FILTER (NOT same AND ({rule})), "
            f"count(*) FILTER (same AND NOT ({rule})) FROM pairs"
        ).fetchone() or (0, 0, 0)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        print(f"{name:<62} {precision:>9.4f} {recall:>7.4f} {f1:>6.4f} {tp:>6} {fp:>5} {fn:>5}")
    print(f"({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
