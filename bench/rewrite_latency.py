"""Policy rewrite latency: how long admission + validation + secure views +
planning take for a typical query, against the same query planned without
any policy (parse, validate, qualify, plan) in the same process, and the
same through the plan cache (``broker.plan_cache``), a new FPS number or
the same text each time: a cached shape.

    .venv/bin/python bench/rewrite_latency.py [--runs 300]

Prints the median and p95 of each and their ratio. Not a timed test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import statistics
import time
from typing import TYPE_CHECKING

from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES
from broker.identity import Principal
from broker.plan_cache import PlanCache
from broker.planner import plan_query
from broker.policy.store import PolicySet
from broker.prepare import prepare_query
from broker.validate import parse_query

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from broker.policy.rewrite import ViewCache

PURPOSE = "investigation"
QUERIES = {
    "filter": "SELECT surname, given_names, birth_date FROM offenders "
    "WHERE status = 'UAL' AND surname LIKE 'B%' ORDER BY surname LIMIT 20",
    "join": "SELECT o.surname, r.release_type, r.conditions FROM offenders o "
    "JOIN releases r ON r.fps_number = o.fps_number WHERE r.status = 'ACTIVE'",
    "aggregate": "SELECT supervising_jurisdiction, count(*) FROM offenders "
    "GROUP BY supervising_jurisdiction",
    "point": "SELECT surname, given_names, status FROM offenders WHERE fps_number = '{}'",
}


def timed(fn: Callable[..., object], runs: int) -> list[float]:
    fn()  # warm caches (sqlglot's dialect and schema objects)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    federation = load_federation(DEFAULT_FEDERATION)
    policy = PolicySet.load(DEFAULT_POLICIES, federation)
    partner = policy.registry.partners["police"]
    principal = Principal(partner, "", 0, dt.datetime.now(dt.UTC))
    role = policy.roles["police"]
    print(
        f"{'query':<10} {'baseline ms':>12} {'policy ms':>10} {'p95 ms':>8} {'ratio':>6} "
        f"{'cached ms':>10} {'p95 ms':>8}"
    )
    for name, sql in QUERIES.items():
        numbers = itertools.count()

        def text(sql: str = sql, numbers: Iterator[int] = numbers) -> str:
            """A new FPS number each time for the point lookup."""
            return sql.format(f"{next(numbers):07d}A") if "{}" in sql else sql

        baseline = timed(
            lambda: plan_query(parse_query(text(), federation.tables), federation), args.runs
        )
        views: ViewCache = {}  # the pipeline keeps built secure views per loaded policy
        policed = timed(
            lambda views=views: prepare_query(
                text(),
                principal,
                role,
                federation,
                purpose="investigation",
                case_ref="",
                cache=views,
            ),
            args.runs,
        )
        plans = PlanCache()

        def cached(views: ViewCache = views, plans: PlanCache = plans) -> object:
            return plans.prepare(
                text(),
                principal,
                role,
                federation,
                purpose="investigation",
                case_ref="",
                cache=views,
            )

        cached()  # the second sight builds the template (timed() warms once more)
        hits = timed(cached, args.runs)
        b, p, c = statistics.median(baseline), statistics.median(policed), statistics.median(hits)
        p95 = statistics.quantiles(policed, n=20)[-1]
        c95 = statistics.quantiles(hits, n=20)[-1]
        print(f"{name:<10} {b:>12.2f} {p:>10.2f} {p95:>8.2f} {p / b:>5.1f}x {c:>10.3f} {c95:>8.3f}")


if __name__ == "__main__":
    main()
