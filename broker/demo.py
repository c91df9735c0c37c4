"""``accord demo``: a whole federation on loopback with synthetic data."""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import TYPE_CHECKING

from broker.client import BrokerClient
from broker.commands import init_certs
from broker.launcher import LocalFederation
from broker.render import render_result

if TYPE_CHECKING:
    from pathlib import Path

    from broker.workdir import Workdir

DEMO_PARTNER = "crown_attorney"

SAMPLES: list[tuple[str, str]] = [
    ("Offenders per source system, by status",
     "SELECT source, status, count(*) AS offenders FROM offenders "
     "GROUP BY source, status ORDER BY source, status"),
    ("People held in more than one system (joined on FPS number across sources)",
     "SELECT o.fps_number, o.surname, o.given_names, string_agg(DISTINCT o.source, ',') AS systems "
     "FROM offenders o WHERE o.fps_number IS NOT NULL "
     "GROUP BY o.fps_number, o.surname, o.given_names "
     "HAVING count(DISTINCT o.source) > 2 ORDER BY o.fps_number LIMIT 5"),
    ("A federal offender's provincial sentences (cross-source join)",
     "SELECT f.fps_number, f.surname, s.source, s.offence_description, s.sentence_date "
     "FROM offenders f JOIN sentences s ON s.fps_number = f.fps_number "
     "WHERE f.source = 'CA-CSC' AND s.source <> 'CA-CSC' "
     "ORDER BY f.fps_number, s.sentence_date LIMIT 8"),
    ("Quebec's DACOR speaks French underneath; the answer is in the common model",
     "SELECT surname, given_names, birth_date, status FROM offenders "
     "WHERE source = 'QC' AND surname LIKE 'L%' ORDER BY surname, given_names LIMIT 5"),
]


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def prepare(workdir: Workdir, federation_path: Path, partners_path: Path,
            *, scale: float, seed: int) -> None:
    """Certificates and data in the work dir; data is regenerated when stale."""
    from adapters.datagen import write_federation_data

    from accord.federation import load_federation

    init_certs(workdir, federation_path, partners_path)
    manifest = workdir.path / "data" / "manifest.json"
    wanted = {"scale": scale, "seed": seed, "federation": str(federation_path.resolve()),
              "federation_mtime": federation_path.stat().st_mtime}
    if manifest.is_file() and json.loads(manifest.read_text()) == wanted:
        return
    started = time.monotonic()
    write_federation_data(load_federation(federation_path), workdir.path, seed=seed, scale=scale)
    manifest.write_text(json.dumps(wanted))
    print(f"synthetic data (scale {scale}, seed {seed}) written in "
          f"{time.monotonic() - started:.1f} s")


def run_demo(workdir: Workdir, federation_path: Path, partners_path: Path, *,
             scale: float, seed: int, serve: bool) -> int:
    prepare(workdir, federation_path, partners_path, scale=scale, seed=seed)
    with LocalFederation(workdir, federation_path, partners_path) as federation:
        print(f"broker on {federation.broker_address}; adapters: "
              + ", ".join(f"{c} {a}" for c, a in federation.adapter_addresses.items()))
        ca, cert, key = workdir.partner_credentials(DEMO_PARTNER)
        with BrokerClient(federation.broker_address, ca, cert, key, end_user="demo") as client:
            for title, sql in SAMPLES:
                result = client.query(sql, purpose="bail_hearing", case_ref="DEMO-1")
                print(f"\n== {title}\n{sql}\n")
                print(render_result(result, "table"))
        if serve:
            wd = workdir.path
            print(f"\nServing until Ctrl-C. In another shell:\n"
                  f"  accord query \"SELECT source, count(*) FROM offenders GROUP BY source\" "
                  f"--as {DEMO_PARTNER} --workdir {wd}\n"
                  f"  accord explain \"SELECT surname FROM offenders WHERE status = 'UAL'\" "
                  f"--as {DEMO_PARTNER} --workdir {wd}")
            sys.stdout.flush()
            # SIGTERM stops the demo as cleanly as Ctrl-C does.
            signal.signal(signal.SIGTERM, _raise_interrupt)
            try:
                while all(p.poll() is None for p in federation.processes.values()):
                    time.sleep(0.5)
                print("a federation process exited; stopping", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                print("\nstopping")
    return 0
