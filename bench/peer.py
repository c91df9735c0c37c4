"""The *peer* baseline: DuckDB's own scanners over the same sources, no policy.

DuckDB's extension repository is out of reach here; its postgres, mysql and
sqlite scanners are on PyPI as ``duckdb-extension-*-scanner`` packages, one
release per DuckDB release, the newest for DuckDB 1.5.5 while the project
pins DuckDB 2. So the peer gets its own virtual environment (``PEER_ENV``,
made on first use from ``PEER_REQUIREMENTS``) and runs there in a
subprocess (bench/peer_worker.py), which the harness asks one query at a
time over a pipe and times from here (a round trip on the pipe costs a
tenth of a millisecond).
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from accord.workdir import ROOT

if TYPE_CHECKING:
    from accord.federation import Federation

PEER_ENV = ROOT / ".venv-peer"
#: DuckDB and the scanner extensions built for it, as one matched set.
PEER_REQUIREMENTS = (
    "duckdb==1.5.5",
    "duckdb-extension-postgres-scanner==1.5.5",
    "duckdb-extension-mysql-scanner==1.5.5",
    "duckdb-extension-sqlite-scanner==1.5.5",
    "pyarrow>=18",
)
WORKER = Path(__file__).resolve().parent / "peer_worker.py"
#: Settings of the peer. With its default filter pushdown the MySQL scanner
#: fails TPC-H Q7 ("INTERNAL Error: Unsupported table filter type", after
#: which the database is invalidated and every later query fails too); with
#: it off all 22 queries answer. A user would turn it off; so does the peer.
PEER_SETTINGS = {"mysql_experimental_filter_pushdown": "false"}
#: The federation's backend kinds as DuckDB's ATTACH types.
ATTACH_TYPES = {"postgresql": "postgres", "mysql": "mysql", "sqlite": "sqlite"}


class PeerError(RuntimeError):
    """The peer's environment could not be made, or the peer failed a query."""


def ensure_env(path: Path = PEER_ENV) -> Path:
    """The peer environment's Python, installing it first if needed."""
    python = path / "bin" / "python"
    stamp = path / ".installed"
    wanted = "\n".join(PEER_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"installing the peer's environment in {path} ({', '.join(PEER_REQUIREMENTS)})")
    venv.create(path, with_pip=True, clear=True)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PeerError(f"pip could not install the peer: {done.stderr[-1500:]}")
    stamp.write_text(wanted)
    return python


def _libpq(dsn: str) -> str:
    """A postgresql:// or mysql:// URL as the key=value string both scanners take."""
    url = urlsplit(dsn)
    parts = {
        "host": url.hostname or "127.0.0.1",
        "port": str(url.port) if url.port else "",
        "user": url.username or "",
        "password": url.password or "",
        ("dbname" if url.scheme.startswith("postgres") else "database"): url.path.lstrip("/"),
    }
    return " ".join(f"{k}={v}" for k, v in parts.items() if v)


def spec(federation: Federation, workdir: Path) -> dict[str, Any]:
    """What the peer attaches and the views it defines, from the federation."""
    attach, views = [], {}
    for code, source in federation.sources.items():
        backend = source.backend
        if backend.kind == "sqlite":
            assert backend.path is not None
            dsn = str(workdir / backend.path)
        else:
            dsn = _libpq(backend.resolve_dsn())
        attach.append({"alias": code, "type": ATTACH_TYPES[backend.kind], "dsn": dsn})
    for name, table in federation.tables.items():
        parts = []
        for code, source in federation.sources.items():
            mapping = source.tables.get(name)
            if mapping is None:
                continue
            columns = []
            for logical, logical_type in table.columns.items():
                column = mapping.columns.get(logical)
                if column is None:
                    raise PeerError(f"{code} lacks {name}.{logical}: the peer needs every column")
                columns.append(
                    {
                        "logical": logical,
                        "physical": column.physical,
                        "type": logical_type,
                        "codes": column.codes,
                        "date_format": column.date_format,
                    }
                )
            parts.append({"alias": code, "table": mapping.physical_table, "columns": columns})
        if parts:
            views[name] = parts
    return {"op": "setup", "attach": attach, "views": views, "settings": PEER_SETTINGS}


class Peer:
    """The peer's subprocess: set up once, then one query at a time."""

    def __init__(self, python: Path, setup: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [str(python), str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            self.version = str(self._ask(setup)["duckdb"])
        except BaseException:
            self.close()
            raise

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise PeerError(f"the peer ended (exit {self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise PeerError(answer["error"])
        return answer

    def answer(self, sql: str) -> int:
        return int(self._ask({"op": "query", "sql": sql})["rows"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def main() -> int:
    """``python -m bench.peer``: make the peer's environment, say where."""
    print(ensure_env())
    return 0


if __name__ == "__main__":
    sys.exit(main())
