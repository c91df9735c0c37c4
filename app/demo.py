"""``accord demo``: a whole federation on loopback with synthetic data."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import TYPE_CHECKING

import grpc

from accord.client import BrokerClient
from app.advice import program, rpc_failure
from app.commands import init_certs
from app.launcher import LocalFederation
from app.render import render_result

if TYPE_CHECKING:
    from pathlib import Path

    from accord.workdir import Workdir
    from app.console.serve import ConsoleServer

DEMO_PARTNER = "crown_attorney"

#: (partner, purpose, case reference): one demo session per partner.
SESSIONS: dict[str, tuple[str, str]] = {
    "crown_attorney": ("bail_hearing", "R-2026-0042"),
    "police": ("investigation", ""),
    "passport_canada": ("passport_decisions", ""),
    "statistics": ("annual_statistics", ""),
}

#: The same questions asked by four partners: each sees only its share.
SAME_QUERIES: list[tuple[str, str]] = [
    (
        "Offender files by gender",
        "SELECT gender, count(*) AS files FROM offenders GROUP BY gender ORDER BY gender",
    ),
    (
        "Files of people named B...",
        "SELECT source, fps_number, surname, given_names, birth_date FROM offenders "
        "WHERE surname LIKE 'B%' ORDER BY surname, given_names, source LIMIT 5",
    ),
]

SAMPLES: list[tuple[str, str]] = [
    (
        "Offenders per source system, by status",
        "SELECT source, status, count(*) AS offenders FROM offenders "
        "GROUP BY source, status ORDER BY source, status",
    ),
    (
        "People held in more than one system (joined on FPS number across sources)",
        "SELECT o.fps_number, o.surname, o.given_names, "
        "string_agg(DISTINCT o.source, ',') AS systems "
        "FROM offenders o WHERE o.fps_number IS NOT NULL "
        "GROUP BY o.fps_number, o.surname, o.given_names "
        "HAVING count(DISTINCT o.source) > 2 ORDER BY o.fps_number LIMIT 5",
    ),
    (
        "A federal offender's provincial sentences (cross-source join)",
        "SELECT f.fps_number, f.surname, s.source, s.offence_description, s.sentence_date "
        "FROM offenders f JOIN sentences s ON s.fps_number = f.fps_number "
        "WHERE f.source = 'CA-CSC' AND s.source <> 'CA-CSC' "
        "ORDER BY f.fps_number, s.sentence_date LIMIT 8",
    ),
    (
        "Quebec's DACOR speaks French underneath; the answer is in the common model",
        "SELECT surname, given_names, birth_date, status FROM offenders "
        "WHERE source = 'QC' AND surname LIKE 'L%' ORDER BY surname, given_names LIMIT 5",
    ),
]


def _session(workdir: Workdir, address: str, partner: str) -> BrokerClient:
    purpose, case_ref = SESSIONS[partner]
    ca, cert, key = workdir.partner_credentials(partner)
    return BrokerClient(address, ca, cert, key, end_user="demo", purpose=purpose, case_ref=case_ref)


def prepare(
    workdir: Workdir,
    federation_path: Path,
    policies_dir: Path,
    *,
    scale: float,
    seed: int,
    data: Path | None = None,
    shards: Path | None = None,
) -> None:
    """Certificates and data in the work dir; synthetic data is regenerated
    when stale, data from files (``data``) loaded every time."""
    from accord.federation import load_federation
    from adapters.datagen import write_federation_data

    init_certs(workdir, federation_path, policies_dir)
    if data is not None:
        from app.dataload import load_federation_files

        started = time.monotonic()
        counts = load_federation_files(load_federation(federation_path), data, workdir.path, shards)
        rows = sum(n for tables in counts.values() for n in tables.values())
        print(f"{rows} rows from {data} loaded in {time.monotonic() - started:.1f} s")
        return
    manifest = workdir.path / "data" / "manifest.json"
    wanted = {
        "scale": scale,
        "seed": seed,
        "federation": str(federation_path.resolve()),
        "federation_mtime": federation_path.stat().st_mtime,
    }
    if manifest.is_file() and json.loads(manifest.read_text()) == wanted:
        return
    started = time.monotonic()
    write_federation_data(load_federation(federation_path), workdir.path, seed=seed, scale=scale)
    manifest.write_text(json.dumps(wanted))
    print(
        f"synthetic data (scale {scale}, seed {seed}) written in {time.monotonic() - started:.1f} s"
    )


def run_demo(
    workdir: Workdir,
    federation_path: Path,
    policies_dir: Path,
    *,
    scale: float,
    seed: int,
    serve: bool,
    data: Path | None = None,
    shards: Path | None = None,
) -> int:
    prepare(
        workdir, federation_path, policies_dir, scale=scale, seed=seed, data=data, shards=shards
    )
    with LocalFederation(workdir, federation_path, policies_dir, supervise=serve) as federation:
        print(
            f"broker on {federation.broker_address}; adapters: "
            + ", ".join(f"{c} {a}" for c, a in federation.adapter_addresses.items())
        )
        print(
            f"Flight SQL (ADBC, JDBC, BI tools; docs/FLIGHT_SQL.md) on {federation.flight_address}"
            f" ({workdir.broker_flight_address_file()})"
        )
        if data is not None:  # not the justice federation: its samples do not apply
            return _serve(workdir, federation) if serve else 0
        failed = 0
        with _session(workdir, federation.broker_address, DEMO_PARTNER) as client:
            for title, sql in SAMPLES:
                print(f"\n== {title} (as {DEMO_PARTNER})\n{sql}\n")
                try:
                    result = client.query(sql)
                except grpc.RpcError as exc:
                    failed += 1
                    print(_failure(exc, workdir, DEMO_PARTNER))
                    continue
                print(render_result(result, "table"))
        for title, sql in SAME_QUERIES:
            print(f"\n== Same query, four partners: {title}\n{sql}")
            for partner in SESSIONS:
                with _session(workdir, federation.broker_address, partner) as client:
                    print(f"\n-- as {partner}")
                    try:
                        result = client.query(sql)
                    except grpc.RpcError as exc:  # a refusal is part of the show
                        print(f"refused: {exc.code().name}: {exc.details()}")
                        continue
                    print(render_result(result, "table"))
        if failed:
            print(
                f"\n{failed} of {len(SAMPLES)} sample queries failed (above, with their query "
                f"ids); the logs of every process are in {workdir.logs}",
                file=sys.stderr,
            )
        if serve:
            return _serve(workdir, federation, justice=True)
    return 1 if failed else 0


def _failure(error: grpc.RpcError, workdir: Workdir, partner: str) -> str:
    """A failed sample, as ``accord query`` would report it."""
    args = argparse.Namespace(command="query", partner=partner, timeout=60.0, broker=None)
    return rpc_failure(error, args, workdir)


def _start_console(workdir: Workdir) -> ConsoleServer:
    """The demo partner's web console beside the federation, with a demo
    user whose generated password is printed once (the file keeps its hash)."""
    from app.console.serve import ConsoleServer, console_config
    from app.console.users import demo_users

    users = workdir.path / "console-users.yaml"
    name, password = demo_users(users)
    server = ConsoleServer(console_config(workdir, DEMO_PARTNER, users)).start()
    print(
        f"\nweb console ({DEMO_PARTNER}): {server.url}\n"
        f"  sign in as {name} with password {password} (printed once; {users} keeps its hash)"
    )
    return server


def _serve(workdir: Workdir, federation: LocalFederation, *, justice: bool = False) -> int:
    """Stays up until Ctrl-C or SIGTERM; the federation supervises its
    processes meanwhile (a dead one is named, logged and restarted)."""
    wd = workdir.path
    print("\nmetrics:")
    for name, address in federation.metrics_addresses.items():
        print(f"  {name:<15} http://{address}/metrics  /healthz  /readyz")
    print(
        f"  Prometheus file_sd targets: {workdir.prometheus_targets_dir()}/*.json "
        "(deploy/prometheus.yml)"
    )
    print(f"audit trail: {workdir.audit_dir()}")
    console = _start_console(workdir) if justice else None
    print(f"logs: {workdir.logs}/*.log")
    print(
        "\nServing until Ctrl-C; a process that dies is restarted. "
        f"Each process and its health: accord status --workdir {wd}"
    )
    if justice:
        accord = program()
        print(
            f"In another shell:\n"
            f'  {accord} query "SELECT source, count(*) FROM offenders GROUP BY source" '
            f"--as {DEMO_PARTNER} --purpose bail_hearing --case-ref R-1 --workdir {wd}\n"
            f"  {accord} explain \"SELECT surname FROM offenders WHERE status = 'UAL'\" "
            f"--as police --purpose investigation --workdir {wd}"
        )
    sys.stdout.flush()

    def interrupted(signum: int, frame: object) -> None:
        # Once: a second Ctrl-C (or the SIGINT a wrapper forwards) must not
        # cut the stop short, which STOP_TIMEOUT_S bounds anyway.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # Ctrl-C reaches the children too: no restart of those it stops.
        federation.stopping()
        raise KeyboardInterrupt

    # SIGTERM stops the demo as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        started = time.monotonic()
        if console is not None:
            console.stop()
        print("\nstopping the broker and the adapters", flush=True)
        federation.stop()
        print(f"stopped in {time.monotonic() - started:.1f} s")
    return 0
