"""Choosing where the synthetic data goes, and writing it there.

``write_federation_data`` writes every source into its own configured
database; ``load_target`` loads sources into one server database named by a
URL. Which writer serves which backend kind is the ``WRITERS`` table; what
a kind or URL scheme is comes from the adapters' backend registry. The
writers themselves (``sqlite_writer``, ``postgres_writer``,
``mysql_writer``) know nothing of each other or of this choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from accord.errors import ConfigError
from adapters.backends.registry import for_url, server_schemes

from . import mysql_writer, postgres_writer
from .logical import generate
from .sqlite_writer import write_sqlite

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow as pa

    from accord.federation import Federation, Source


@dataclass(frozen=True)
class Writer:
    """How the data of one backend kind is written."""

    #: into the source's own database (the work dir given for file databases)
    write_source: Callable[[Federation, Source, dict[str, pa.Table], Path], dict[str, int]]
    #: into the database a server URL names, created if missing (None: files only)
    load: Callable[[Federation, str, dict[str, pa.Table], str], dict[str, int]] | None = None
    create_database: Callable[[str], None] | None = None


def _write_sqlite_source(
    federation: Federation, source: Source, tables: dict[str, pa.Table], workdir: Path
) -> dict[str, int]:
    assert source.backend.path is not None  # checked when the config was parsed
    path = Path(workdir) / source.backend.path
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_sqlite(federation, source.code, tables, path)


def _load_postgres(
    federation: Federation, code: str, tables: dict[str, pa.Table], target: str
) -> dict[str, int]:
    # one database for many sources: their physical table names differ
    return postgres_writer.write_postgres(federation, code, tables, target, schema="public")


def _server_source(
    write: Callable[[Federation, str, dict[str, pa.Table], str], dict[str, int]],
) -> Callable[[Federation, Source, dict[str, pa.Table], Path], dict[str, int]]:
    def write_source(
        federation: Federation, source: Source, tables: dict[str, pa.Table], workdir: Path
    ) -> dict[str, int]:
        dsn = source.backend.resolve_dsn()
        create_database(dsn)
        return write(federation, source.code, tables, dsn)

    return write_source


#: The writer of each backend kind of the registry (a unit test checks it has them all).
WRITERS: dict[str, Writer] = {
    "sqlite": Writer(_write_sqlite_source),
    "postgresql": Writer(
        _server_source(postgres_writer.write_postgres),
        _load_postgres,
        postgres_writer.create_database,
    ),
    "mysql": Writer(
        _server_source(mysql_writer.write_mysql),
        mysql_writer.write_mysql,
        mysql_writer.create_database,
    ),
}


def write_federation_data(
    federation: Federation, workdir: Path, *, seed: int = 7, scale: float = 0.01
) -> dict[str, dict[str, int]]:
    """Generates the data once and writes every source's database: SQLite
    files at workdir / backend.path, server databases at the source's DSN
    (created if missing). Returns source -> logical table -> rows."""
    return write_sources(federation, generate(federation, seed=seed, scale=scale), workdir)


def write_sources(
    federation: Federation, data: dict[str, dict[str, pa.Table]], workdir: Path
) -> dict[str, dict[str, int]]:
    """Writes each source's logical tables (source code -> table -> rows, as
    ``generate`` returns them) into its own database; source -> table -> rows."""
    counts: dict[str, dict[str, int]] = {}
    for code, source in federation.sources.items():
        writer = WRITERS[source.backend.kind]
        counts[code] = writer.write_source(federation, source, data.get(code, {}), workdir)
    return counts


def load_target(
    federation: Federation,
    target: str,
    *,
    seed: int,
    scale: float,
    sources: list[str] | None = None,
) -> dict[str, dict[str, int]]:
    """Generates the data and loads sources into one server database.

    ``target`` is ``postgresql://user@host:port/dbname`` or
    ``mysql://user:password@host:port/dbname``; the database is created if it
    does not exist. Loads every source whose backend kind matches the URL
    (postgresql or mysql), or the listed ``sources`` whatever their kind. In
    PostgreSQL the tables go to the ``public`` schema (physical table names
    differ from source to source). Returns source -> logical table -> rows.
    """
    scheme = urlsplit(target).scheme
    server = for_url(target)
    load = WRITERS[server.kind].load if server else None
    if server is None or load is None:
        raise ConfigError(f"target {scheme}://... is neither {server_schemes('nor')}")
    kind = server.kind
    if sources is None:
        codes = [c for c, s in federation.sources.items() if s.backend.kind == kind]
        if not codes:
            raise ConfigError(
                f"no source of the federation has a {kind} backend; name the sources to load"
            )
    else:
        codes = [federation.source(code).code for code in sources]
    create_database(target)
    data = generate(federation, seed=seed, scale=scale)
    return {code: load(federation, code, data[code], target) for code in codes}


def create_database(target: str) -> None:
    """Creates the database a postgresql:// or mysql:// URL names, if missing."""
    server = for_url(target)
    create = WRITERS[server.kind].create_database if server else None
    if create is None:
        raise ConfigError(f"a server DSN starts with {server_schemes()}")
    create(target)
