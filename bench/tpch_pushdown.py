"""The 22 TPC-H queries through the broker and in one DuckDB, timed.

The federation of tests/integration/test_tpch.py (lineitem and orders
sharded over PostgreSQL, MariaDB and SQLite; a role that sees everything),
at a stated scale. Each query runs ``--runs`` times through the broker and
in one DuckDB over the same data; the script prints the median of each and
their ratio, and the median ratio over the 22 queries. It measures the
planner's pushdown (constant folding, OR-splitting, shared scans, shard
pruning): run it before and after a change to the planner.

    .venv/bin/python -m bench.tpch_pushdown --scale 0.05 --runs 3 --json out.json
    git worktree add /tmp/before main   # or any commit before the change
    .venv/bin/python -m bench.tpch_pushdown --baseline /tmp/before --runs 3
    .venv/bin/python -m bench.tpch_pushdown --plan-only   # rows asked, no servers

With ``--baseline`` the brokers of both trees run at once, each query
timed on one and then the other, so the machine's load (shared by other
work) falls on both alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from accord.client import BrokerClient
from accord.federation import load_federation
from accord.workdir import Workdir
from app.commands import init_certs
from app.dataload import load_federation_files, read_logical
from app.launcher import LocalFederation
from bench.tpch import drop_databases, environment, tpchgen

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "tpch"
PG = os.environ.get("ACCORD_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
MARIADB = os.environ.get("ACCORD_TEST_MARIADB", "mysql://root@127.0.0.1:3306")


def queries() -> dict[int, str]:
    text = (FIXTURES / "queries.sql").read_text(encoding="utf-8")
    parts = re.split(r"^-- Q(\d+)\s*$", text, flags=re.MULTILINE)
    return {int(n): sql.strip() for n, sql in zip(parts[1::2], parts[2::2], strict=True)}


def fetched(data: Path, federation_file: Path) -> dict[int, dict[str, int]]:
    """Per query, the rows and values (rows x columns) its plan asks the
    sources for: what pushdown saves, independent of the machine's load.
    Each scan's predicate is evaluated by DuckDB over that source's share
    (as the loader splits it); an adapter that cannot push a conjunct sends
    more, so this is what the planner asks, not always what travels."""
    from app.dataload import load_shards, split
    from broker.planner import plan_query
    from broker.validate import parse_query

    federation = load_federation(federation_file)
    held = {n for s in federation.sources.values() for n in s.tables}
    tables = {n: read_logical(data, federation.tables[n]) for n in held}
    shares = split(federation, tables, load_shards(FIXTURES / "shards.yaml"))
    con = duckdb.connect()
    volume: dict[int, dict[str, int]] = {}
    for number, sql in queries().items():
        plan = plan_query(parse_query(sql, federation.tables), federation)
        rows = values = scans = 0
        for ref in plan.references:
            for spec in ref.scans:
                con.register("share", shares[spec.source][ref.table])
                where = f" WHERE {spec.predicate}" if spec.predicate else ""
                limit = f" LIMIT {spec.limit}" if spec.limit else ""
                n = con.sql(f"SELECT count(*) FROM (SELECT * FROM share{where}{limit})").fetchall()
                rows += n[0][0]
                values += n[0][0] * len(spec.columns)
                scans += 1
                con.unregister("share")
        volume[number] = {"scans": scans, "rows": rows, "values": values}
        print(f"Q{number:<3} {scans:3} scans {rows:9} rows {values:10} values", flush=True)
    return volume


@contextlib.contextmanager
def running(root: Path, data: Path, tree: Path | None, name: str) -> Iterator[BrokerClient]:
    """The TPC-H federation over its own databases (``name``), its servers
    running the code at ``tree`` (None: this checkout) with that tree's
    fixture files, as a client of its broker."""
    fixtures = FIXTURES if tree is None else tree / "tests" / "fixtures" / "tpch"
    federation_file, policies = fixtures / "federation.yaml", fixtures / "policies"
    variables = {
        "ACCORD_TPCH_PG_DSN": f"{PG}/{name}",
        "ACCORD_TPCH_MARIADB_DSN": f"{MARIADB}/{name}",
        # The servers are child processes: they import from the tree (the
        # caller runs them from a neutral directory, or `-m` would put the
        # current one first).
        "PYTHONPATH": str(tree or ROOT),
    }
    try:
        with environment(variables):
            workdir = Workdir(root / name)
            init_certs(workdir, federation_file, policies)
            federation = load_federation(federation_file)
            load_federation_files(federation, data, workdir.path, fixtures / "shards.yaml")
            with LocalFederation(workdir, federation_file, policies) as servers:
                ca, cert, key = workdir.partner_credentials("tpch_benchmark")
                with BrokerClient(
                    servers.broker_address, ca, cert, key, end_user="tpch", purpose="benchmark"
                ) as client:
                    yield client
    finally:
        drop_databases(name)


def timed(run: Callable[[str], object], sql: str) -> float:
    started = time.perf_counter()
    run(sql)
    return (time.perf_counter() - started) * 1000


def single_engine(reference: duckdb.DuckDBPyConnection) -> Callable[[str], object]:
    return lambda sql: reference.sql(sql).to_arrow_table()


def brokered(client: BrokerClient) -> Callable[[str], object]:
    return lambda sql: client.query(sql, timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", type=int, nargs="*")
    parser.add_argument(
        "--plan-only", action="store_true", help="no servers: what each plan asks the sources for"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of the code before (e.g. `git worktree add DIR main`): its broker "
        "runs beside this one's, the two timed in turn, query by query",
    )
    args = parser.parse_args()
    args.json = args.json.resolve() if args.json else None  # the run changes directory
    args.baseline = args.baseline.resolve() if args.baseline else None
    chosen = {n: q for n, q in queries().items() if not args.only or n in args.only}
    home = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        data = tpchgen(Path(tmp) / "data", args.scale)
        if args.plan_only:
            volume = fetched(data, FIXTURES / "federation.yaml")
            total = {k: sum(v[k] for v in volume.values()) for k in ("scans", "rows", "values")}
            print(
                f"all  {total['scans']:3} scans {total['rows']:9} rows {total['values']:10} values"
            )
            if args.json:
                args.json.write_text(json.dumps({"scale": args.scale, "queries": volume}, indent=2))
            return
        os.chdir(tmp)  # see running(): the servers import from their own tree
        reference = duckdb.connect()
        for table in load_federation(FIXTURES / "federation.yaml").tables.values():
            reference.register(table.name, read_logical(data, table))
        variants = (
            {"after": None} if args.baseline is None else {"before": args.baseline, "after": None}
        )
        tag = uuid.uuid4().hex[:8]
        results: dict[int, dict[str, float]] = {}
        with contextlib.ExitStack() as stack:
            stack.callback(os.chdir, home)
            clients = {
                v: stack.enter_context(running(Path(tmp), data, tree, f"accord_tpchb_{v}_{tag}"))
                for v, tree in variants.items()
            }
            for number, sql in chosen.items():
                samples: dict[str, list[float]] = {v: [] for v in [*variants, "duckdb"]}
                for client in clients.values():
                    client.query(sql, timeout=300)  # warm: channels, caches
                for _ in range(args.runs):  # in turn, so the machine's load falls on each alike
                    for v, client in clients.items():
                        samples[v].append(timed(brokered(client), sql))
                    samples["duckdb"].append(timed(single_engine(reference), sql))
                row = results[number] = {
                    f"{v}_ms": statistics.median(t) for v, t in samples.items()
                }
                ratios = {v: row[f"{v}_ms"] / row["duckdb_ms"] for v in variants}
                print(
                    f"Q{number:<3}"
                    + "".join(f" {k} {ms:9.1f}" for k, ms in row.items())
                    + "".join(f"  {v}/duckdb {r:7.1f}x" for v, r in ratios.items())
                    # Scans each broker sends (Explain): which code each runs, seen.
                    + "".join(
                        f"  {v} {len(c.explain(sql).scans)} scans" for v, c in clients.items()
                    ),
                    flush=True,
                )
    for v in variants:
        each = [r[f"{v}_ms"] / r["duckdb_ms"] for r in results.values()]
        print(f"{v}: median {statistics.median(each):.1f}x one DuckDB over {len(each)} queries")
    if args.json:
        args.json.write_text(
            json.dumps({"scale": args.scale, "runs": args.runs, "queries": results}, indent=2)
        )


if __name__ == "__main__":
    main()
