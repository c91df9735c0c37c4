"""Which of the project's files one query passes through in the broker.

Starts the embedded federation's adapters and a broker in this process,
warms it with a few queries, then traces one more (every Python function
call the broker makes for it, on the event loop and its worker threads,
not the client's) and prints the project files in the order the query
first reaches them with the files each one calls, how many there are, and
how often the path comes back to a file it had left (consecutive calls
within one file count once).

    .venv/bin/python bench/query_path.py [--sql "SELECT ..."]

The layout of this checkout decides the imports, so the same script
measures an older commit too (run it with PYTHONPATH at that checkout).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import accord
from accord import tls
from accord.federation import load_federation
from adapters.datagen import write_federation_data
from broker.fanout import AdapterClients
from broker.pipeline import QueryPipeline
from broker.policy.store import PolicySet
from broker.server import create_server

ROOT = Path(accord.__file__).resolve().parent.parent
if (ROOT / "app").is_dir():  # this layout: shared contracts in accord/, wiring in app/
    from accord.client import BrokerClient
    from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
    from app.commands import init_certs
    from app.launcher import LocalFederation
else:  # the layout before it: everything under broker/
    from broker.client import BrokerClient  # type: ignore[no-redef,import-not-found,unused-ignore]
    from broker.commands import init_certs  # type: ignore[no-redef,import-not-found,unused-ignore]
    from broker.launcher import LocalFederation  # type: ignore[no-redef,import-not-found,unused-ignore]
    from broker.workdir import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        DEFAULT_FEDERATION,
        DEFAULT_POLICIES,
        Workdir,
    )

PACKAGES = ("accord", "app", "broker", "adapters", "certs")
SQL = (
    "SELECT o.surname, s.offence_code FROM offenders o JOIN sentences s "
    "ON s.fps_number = o.fps_number WHERE o.status = 'UAL' ORDER BY ALL LIMIT 20"
)


class Tracer:
    """Records the project file of every function call, in order."""

    def __init__(self, skip_thread: int) -> None:
        self.skip_thread = skip_thread
        self.files: list[str] = []
        self.edges: set[tuple[str, str]] = set()  # (caller's file, callee's file)
        self.on = False

    def __call__(self, frame: Any, event: str, _arg: Any) -> None:
        if not self.on or event != "call" or threading.get_ident() == self.skip_thread:
            return
        callee = project_file(frame.f_code.co_filename)
        if callee is None:
            return
        self.files.append(callee)
        caller = project_file(frame.f_back.f_code.co_filename) if frame.f_back else None
        if caller is not None and caller != callee:
            self.edges.add((caller, callee))


def project_file(name: str) -> str | None:
    """``broker/merge.py`` for a file of the project's packages, else None."""
    if not name.startswith(str(ROOT)):
        return None
    relative = Path(name).relative_to(ROOT).as_posix()
    return relative if relative.split("/")[0] in PACKAGES and "/v1/" not in relative else None


async def trace(workdir: Workdir, launcher: LocalFederation, sql: str) -> Tracer:
    federation = load_federation(DEFAULT_FEDERATION).with_endpoints(
        {c: (a,) for c, a in launcher.adapter_addresses.items()}
    )
    pki = workdir.pki
    clients = AdapterClients(federation, pki.ca_cert(), *pki.broker_client())
    pipeline = QueryPipeline(
        federation, clients, PolicySet.load(DEFAULT_POLICIES, federation), workdir.mask_secret()
    )
    server, port, readiness = await create_server(
        pipeline, tls.server_credentials(pki.ca_cert(), *pki.broker_server())
    )
    partner = workdir.partner_credentials("crown_attorney")
    session = BrokerClient(f"localhost:{port}", *partner, purpose="bail_hearing", case_ref="R-1")
    ready, go = threading.Event(), threading.Event()
    loop, done = asyncio.get_running_loop(), asyncio.Event()

    def client() -> None:
        for _ in range(3):  # warm: channels, secure views, caches
            session.query(sql)
        ready.set()
        go.wait()
        session.query(sql)
        loop.call_soon_threadsafe(done.set)

    thread = threading.Thread(target=client)
    thread.start()
    await asyncio.to_thread(ready.wait)
    assert thread.ident is not None
    tracer = Tracer(thread.ident)
    sys.setprofile(tracer)
    threading.setprofile(tracer)
    # Worker threads started from now on are traced too (merge, audit writes).
    loop.set_default_executor(ThreadPoolExecutor(4))
    tracer.on = True
    go.set()
    await done.wait()  # the loop serves the traced query meanwhile
    tracer.on = False
    sys.setprofile(None)
    threading.setprofile(None)  # type: ignore[arg-type,unused-ignore]
    thread.join()
    session.close()
    await readiness.stop()
    await server.stop(None)
    await clients.close()
    return tracer


def calls_against_imports(edges: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """Calls from a file into one that imports it (directly or not) while it
    does not import that one: the path going back up the layers."""
    import grimp  # import-linter's graph builder, a dev dependency

    graph = grimp.build_graph(*(p for p in PACKAGES if (ROOT / p).is_dir()))

    def module(path: str) -> str:
        return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")

    return sorted(
        (caller, callee)
        for caller, callee in edges
        if graph.chain_exists(importer=module(callee), imported=module(caller))
        and not graph.chain_exists(importer=module(caller), imported=module(callee))
    )


def path_summary(files: list[str]) -> tuple[list[str], int]:
    """(files in order of first visit, returns to a file already left)."""
    collapsed = [f for i, f in enumerate(files) if i == 0 or files[i - 1] != f]
    seen: list[str] = []
    returns = 0
    for name in collapsed:
        if name in seen:
            returns += 1
        else:
            seen.append(name)
    return seen, returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sql", default=SQL)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Workdir(Path(tmp))
        init_certs(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES)
        write_federation_data(load_federation(DEFAULT_FEDERATION), workdir.path, scale=0.01)
        with LocalFederation(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES) as launcher:
            tracer = asyncio.run(trace(workdir, launcher, args.sql))
    seen, returns = path_summary(tracer.files)
    upward = calls_against_imports(tracer.edges)
    print(f"checkout {ROOT}")
    for name in seen:
        callees = sorted(callee for caller, callee in tracer.edges if caller == name)
        print(f"  {name:<28} calls {', '.join(callees) or '-'}")
    print(
        f"{len(seen)} files, {len(tracer.edges)} distinct calls between files, "
        f"{returns} returns to a file already left, {len(tracer.files)} calls"
    )
    print(f"{len(upward)} calls against the import direction (a file calling one that imports it):")
    for caller, callee in upward:
        print(f"  {caller} -> {callee}")


if __name__ == "__main__":
    main()
