"""The error the release of aggregate-only answers adds to typical
statistics tables (``broker/policy/disclosure.py``).

    .venv/bin/python bench/disclosure_error.py [--scale 0.05] [--keys 5]

Each table is prepared as the statistics partner, its scans run in process
on synthetic data (``accord datagen``'s generator, every source), merged by
the broker's own merger, then released under ``--keys`` random secrets.
The merged table before the release holds the exact values, so each
released cell is compared with its own truth. Prints, per table: cells,
cells withheld (and the share of the table's total they hold), then for released cells
the mean absolute error, the mean relative error (|error| / true value)
and the largest error.

For a role with ``privacy:`` (the statistics role), each table is released
the way the broker releases it (``broker.policy.privacy``: discrete Laplace
noise from OpenDP, then the rounding), each secret with a fresh in-memory
ledger; the errors then include the noise.

Then the averaging attack: an attacker who finds m *distinct* pairs of
released cells that each differ by the same withheld count c (1..k-1) and
averages their differences. First with rounding alone (the module's own
draws, a distinct set of persons, a distinct digest): how often the rounded
mean is c, for growing m. Then as the private role releases them, through
its budget: the attacker asks pairs until the broker refuses, and the
estimate at that point is compared with the documented bound
(``broker.policy.privacy.averaging_bound``). Not a timed test.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import random
import statistics
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from accord.catalog import SOURCE_COLUMN
from accord.errors import OverQuota
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES
from adapters.datagen import generate
from broker.budget import PrivacyLedger
from broker.identity import Principal
from broker.merge import Merger, aligned
from broker.policy.disclosure import Output, ReleaseSpec, draw, release, release_key, rounded
from broker.policy.privacy import averaging_bound, query_identity, release_private
from broker.policy.store import PolicySet
from broker.prepare import prepare_query

if TYPE_CHECKING:
    from accord.federation import Federation
    from broker.planner import TableReference

PARTNER = "statistics"
TABLES = {
    "offenders by jurisdiction x status (count)": "SELECT supervising_jurisdiction, status, "
    "count(*) FROM offenders GROUP BY supervising_jurisdiction, status",
    "offenders by jurisdiction x gender x birth year (count)": "SELECT "
    "supervising_jurisdiction, gender, birth_date, count(*) FROM offenders "
    "GROUP BY supervising_jurisdiction, gender, birth_date",
    "sentences by offence x type (count)": "SELECT offence_code, sentence_type, count(*) "
    "FROM sentences GROUP BY offence_code, sentence_type",
    "sentence days by offence (sum)": "SELECT offence_code, sum(length_days) FROM sentences "
    "GROUP BY offence_code",
    "sentence days by type x year (sum)": "SELECT sentence_type, sentence_date, "
    "sum(length_days) FROM sentences GROUP BY sentence_type, sentence_date",
    "mean sentence days by type (avg)": "SELECT sentence_type, avg(length_days) FROM sentences "
    "GROUP BY sentence_type",
}


def scanned(
    ref: TableReference, federation: Federation, data: dict[str, dict[str, pa.Table]]
) -> pa.Table:
    """One reference's rows: each planned scan run on its source's generated rows."""
    logical = federation.tables[ref.table]
    schema = logical.arrow_schema(ref.columns).append(pa.field(SOURCE_COLUMN, pa.string()))
    parts = []
    con = duckdb.connect()
    for spec in ref.scans:
        if ref.table not in data.get(spec.source, {}):
            continue
        con.register("source_rows", data[spec.source][ref.table])
        columns = ", ".join(f'"{c}"' for c in spec.columns)
        where = f" WHERE {spec.predicate}" if spec.predicate else ""
        sent = con.sql(f"SELECT {columns} FROM source_rows{where}").to_arrow_table()
        parts.append(aligned(sent, spec.source, logical.arrow_schema(spec.columns), schema))
    return pa.concat_tables(parts) if parts else schema.empty_table()


def number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float, Decimal)) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.05, help="datagen scale (1: ~0.5 M)")
    parser.add_argument("--keys", type=int, default=5, help="random release secrets to average")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    federation = load_federation(DEFAULT_FEDERATION)
    policy = PolicySet.load(DEFAULT_POLICIES, federation)
    partner = policy.registry.partners[PARTNER]
    role = policy.roles[partner.role]
    principal = Principal(partner, "", 0, dt.datetime.now(dt.UTC))
    data = generate(federation, seed=args.seed, scale=args.scale)
    merger = Merger(federation)
    offenders = sum(t["offenders"].num_rows for t in data.values() if "offenders" in t)
    print(
        f"scale {args.scale}: {offenders} offender files; role {role.name}: groups under "
        f"{role.min_group_size} persons withheld, counts to base {role.rounding_base}, sums of "
        + ", ".join(f"{c} to base {b}" for g in role.tables.values() for c, b in g.measures.items())
        + f"; {args.keys} secrets"
    )
    header = (
        f"{'table':58} {'cells':>6} {'withheld':>8} {'of total':>8} "
        f"{'MAE':>8} {'MRE':>7} {'max':>6}"
    )
    print(header)
    for title, sql in TABLES.items():
        prepared = prepare_query(
            sql, principal, role, federation, purpose="annual_statistics", case_ref=""
        )
        assert prepared.release is not None
        plan = prepared.plan
        tables = {ref.ref_id: scanned(ref, federation, data) for ref in plan.references}
        exact, _ = merger.run(plan, tables)
        shown = len(prepared.release.outputs)
        value_at = shown - 1  # each table's statistic is its last output column
        truth = {
            tuple(r[:value_at]): r[value_at]
            for r in zip(*(exact.column(i).to_pylist() for i in range(shown)), strict=True)
        }
        absolute: list[float] = []
        relative: list[float] = []
        withheld, kept = 0, set[tuple[Any, ...]]()
        for _ in range(args.keys):
            key = release_key(os.urandom(32), role.name)
            if role.privacy is not None:
                ledger = PrivacyLedger()
                reservation = ledger.reserve(PARTNER, role.privacy.epsilon_per_query, 1e9)
                query = query_identity(prepared.rewritten_sql)
                released, dropped, _ = release_private(
                    exact,
                    prepared.release,
                    key,
                    role.privacy,
                    ledger,
                    reservation,
                    role.name,
                    query,
                )
            else:
                released, dropped = release(exact, prepared.release, key)
            withheld = dropped  # the same for every secret: it depends on persons only
            kept.clear()
            for row in zip(*(c.to_pylist() for c in released.columns), strict=True):
                cell, value = tuple(row[:value_at]), row[value_at]
                kept.add(cell)
                true = number(truth[cell])
                if value is None or true != true:  # nothing to compare (a SUM of NULLs)
                    continue
                absolute.append(abs(number(value) - true))
                if true:
                    relative.append(abs(number(value) - true) / abs(true))
        values = {cell: number(v) for cell, v in truth.items() if number(v) == number(v)}
        share = sum(v for c, v in values.items() if c not in kept) / (sum(values.values()) or 1)
        print(
            f"{title:58} {exact.num_rows:>6} {withheld:>8} {share:>8.1%} "
            f"{statistics.fmean(absolute or [0]):>8.2f} {statistics.fmean(relative or [0]):>7.2%} "
            f"{max(absolute or [0]):>6.0f}"
        )
    merger.close()
    averaging(role.rounding_base, role.min_group_size, args.seed)
    if role.privacy is not None:
        budgeted(role, args.seed)


def averaging(base: int, k: int, seed: int, trials: int = 400) -> None:
    """How many distinct differencing pairs recover a withheld count."""
    rng = random.Random(seed)
    print(
        f"averaging m distinct pairs (released A_i - released A_i minus a cell of 1..{k - 1}), "
        "rounding alone (no noise, no budget):"
    )
    for m in (1, 5, 20, 50, 100, 200):
        hits, errors = 0, []
        for _ in range(trials):
            key, c = release_key(rng.randbytes(32), "statistics"), rng.randrange(1, k)
            total = 0
            for _ in range(m):
                a = rng.randrange(100, 10_000)
                cell_a, cell_b = [rng.getrandbits(64)], [rng.getrandbits(64)]
                released_a = rounded(a, base, draw(key, cell_a, "count", base, a))
                released_b = rounded(a - c, base, draw(key, cell_b, "count", base, a - c))
                total += released_a - released_b
            estimate = total / m
            hits += round(estimate) == c
            errors.append(abs(estimate - c))
        print(
            f"  m = {m:>3}: {2 * m:>3} queries, rounded mean is the cell in {hits / trials:5.1%} "
            f"of trials (a guess: {1 / (k - 1):.0%}), mean error {statistics.fmean(errors):.2f}"
        )


def budgeted(role: Any, seed: int, trials: int = 400) -> None:
    """The same attack on a private role's offenders counts, through its budget."""
    privacy = role.privacy
    rows = privacy.rows_per_person["offenders"]
    spec = ReleaseSpec(
        (Output("dimension"), Output("count", role.rounding_base, sensitivity=rows, slots=("n",))),
        role.min_group_size,
        role.rounding_base,
        (2,),
        (3,),
    )
    rng = random.Random(seed)

    def cell(n: int) -> pa.Table:
        return pa.table(
            {
                "g": ["x"],
                "n": pa.array([n], pa.int64()),
                "p": pa.array([max(n, role.min_group_size)], pa.int64()),
                "c": pa.array([0], pa.uint64()),
            }
        )

    print(
        f"averaging through the budget (epsilon {privacy.epsilon_per_query:g} a query, "
        f"{privacy.epsilon_per_year:g} a year, {rows} offender rows a person):"
    )
    for per_year in (privacy.epsilon_per_year, 10 * privacy.epsilon_per_year, None):
        pairs, errors, hits = [], [], 0
        # the budget's own trials are cheap (10 pairs); the larger runs fewer
        runs = trials if per_year == privacy.epsilon_per_year else trials // 8
        for _ in range(runs):
            ledger, key = PrivacyLedger(), release_key(rng.randbytes(32), role.name)
            c, total, m = rng.randrange(1, role.min_group_size), 0, 0
            limit = per_year if per_year is not None else 1e9
            while per_year is not None or m < 200:
                broad = rng.randrange(100, 10_000)
                try:
                    values = []
                    for n in (broad, broad - c):
                        held = ledger.reserve(PARTNER, privacy.epsilon_per_query, limit)
                        answer, _, _ = release_private(
                            cell(n), spec, key, privacy, ledger, held, role.name, f"{m}-{n}"
                        )
                        values.append(answer.column("n")[0].as_py())
                except OverQuota:
                    break
                total += values[0] - values[1]
                m += 1
            pairs.append(m)
            estimate = total / max(m, 1)
            errors.append(estimate - c)
            hits += round(estimate) == c
        rms = statistics.fmean(e * e for e in errors) ** 0.5
        name = f"epsilon {per_year:g} a year" if per_year is not None else "no budget, 200 pairs"
        bound = ""
        if per_year is not None:
            yearly = dataclasses.replace(privacy, epsilon_per_year=per_year)
            bound = f", bound {averaging_bound(yearly, rows):.2f}"
        print(
            f"  {name:>24}: {statistics.fmean(pairs):5.0f} pairs answered, rounded mean is the "
            f"cell in {hits / len(errors):5.1%} (a guess: {1 / (role.min_group_size - 1):.0%}), "
            f"RMS error {rms:.2f}{bound}"
        )


if __name__ == "__main__":
    main()
