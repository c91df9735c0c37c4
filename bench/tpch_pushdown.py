"""The 22 TPC-H queries through the broker and in one DuckDB, timed.

The federation of tests/integration/test_tpch.py (lineitem and orders
sharded over PostgreSQL, MariaDB and SQLite; a role that sees everything),
at a stated scale. Each query runs ``--runs`` times through the broker and
in one DuckDB over the same data; the script prints the median of each and
their ratio, and the median ratio over the 22 queries. It measures the
planner's pushdown (constant folding, OR-splitting, shared scans, shard
pruning): run it before and after a change to the planner.

    .venv/bin/python -m bench.tpch_pushdown --scale 0.05 --runs 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb

from accord.client import BrokerClient
from accord.federation import load_federation
from accord.workdir import Workdir
from app.commands import init_certs
from app.dataload import load_federation_files, read_logical
from app.launcher import LocalFederation

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tpch"
PG = os.environ.get("ACCORD_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
MARIADB = os.environ.get("ACCORD_TEST_MARIADB", "mysql://root@127.0.0.1:3306")


def queries() -> dict[int, str]:
    text = (FIXTURES / "queries.sql").read_text(encoding="utf-8")
    parts = re.split(r"^-- Q(\d+)\s*$", text, flags=re.MULTILINE)
    return {int(n): sql.strip() for n, sql in zip(parts[1::2], parts[2::2], strict=True)}


def drop_databases(name: str) -> None:
    """The loader creates the source databases; this drops them after."""
    import mysql.connector
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    maria = mysql.connector.connect(host="127.0.0.1", user="root", password="")
    try:
        maria.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        maria.close()


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


def timed(run: object, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", type=int, nargs="*")
    parser.add_argument(
        "--plan-only", action="store_true", help="no servers: what each plan asks the sources for"
    )
    args = parser.parse_args()
    federation_file = FIXTURES / "federation.yaml"
    if args.plan_only:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            binary = Path(sys.executable).parent / "tpchgen-cli"
            subprocess.run(
                [str(binary), "parquet", "-s", str(args.scale), "--output-dir", str(data)],
                check=True,
                capture_output=True,
            )
            volume = fetched(data, federation_file)
        total = {k: sum(v[k] for v in volume.values()) for k in ("scans", "rows", "values")}
        print(f"all  {total['scans']:3} scans {total['rows']:9} rows {total['values']:10} values")
        if args.json:
            args.json.write_text(json.dumps({"scale": args.scale, "queries": volume}, indent=2))
        return
    name = f"accord_tpchb_{uuid.uuid4().hex[:8]}"
    os.environ["ACCORD_TPCH_PG_DSN"] = f"{PG}/{name}"
    os.environ["ACCORD_TPCH_MARIADB_DSN"] = f"{MARIADB}/{name}"
    policies = FIXTURES / "policies"
    results: dict[int, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            data.mkdir()
            binary = Path(sys.executable).parent / "tpchgen-cli"
            subprocess.run(
                [str(binary), "parquet", "-s", str(args.scale), "--output-dir", str(data)],
                check=True,
                capture_output=True,
            )
            workdir = Workdir(Path(tmp) / "work")
            init_certs(workdir, federation_file, policies)
            federation = load_federation(federation_file)
            load_federation_files(federation, data, workdir.path, FIXTURES / "shards.yaml")
            reference = duckdb.connect()
            for table in federation.tables.values():
                reference.register(table.name, read_logical(data, table))
            with LocalFederation(workdir, federation_file, policies) as running:
                ca, cert, key = workdir.partner_credentials("tpch_benchmark")
                with BrokerClient(
                    running.broker_address, ca, cert, key, end_user="tpch", purpose="benchmark"
                ) as client:
                    for number, sql in queries().items():
                        if args.only and number not in args.only:
                            continue
                        client.query(sql, timeout=300)  # warm: channels, caches
                        broker = timed(lambda sql=sql: client.query(sql, timeout=300), args.runs)
                        single = timed(
                            lambda sql=sql: reference.sql(sql).to_arrow_table(), args.runs
                        )
                        results[number] = {"broker_ms": broker, "duckdb_ms": single}
                        print(
                            f"Q{number:<3} broker {broker:9.1f} ms  duckdb {single:7.1f} ms"
                            f"  {broker / single:7.1f}x",
                            flush=True,
                        )
    finally:
        drop_databases(name)
    ratios = [r["broker_ms"] / r["duckdb_ms"] for r in results.values()]
    print(f"median ratio {statistics.median(ratios):.1f}x over {len(ratios)} queries")
    if args.json:
        args.json.write_text(
            json.dumps({"scale": args.scale, "runs": args.runs, "queries": results}, indent=2)
        )


if __name__ == "__main__":
    main()
