"""The one table of database backends an adapter can serve a source from.

Each backend declares here, once, everything the rest of the adapter needs
to know about it: its kind (as the federation file names it), the URL
schemes of its DSNs, the sqlglot dialect its physical SQL is written in
(and so its ``adapters.dialects`` rules), its DSN parser and how to open
it. Code that behaves differently per database looks the kind up here
instead of testing for ``"sqlite"`` or ``"mysql"`` itself.

Backend modules are imported only when a backend is opened: a PostgreSQL
adapter never loads the MariaDB driver, and the command line starts fast.

>>> backend_type("postgresql").dialect, backend_type("postgresql").rules.native_dates
('postgres', True)
>>> for_url("mariadb://root@127.0.0.1/oms").kind
'mysql'
>>> server_schemes()
'postgresql:// or mysql://'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from accord.errors import ConfigError
from adapters.backends.dsn import MYSQL_SCHEMES, mysql_connect_args, postgres_connect_args
from adapters.dialects import RULES

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from accord.federation import Source
    from adapters.backends.base import Backend
    from adapters.dialects import DialectRules


@dataclass(frozen=True)
class BackendType:
    """One kind of database backend."""

    kind: str  # the federation file's ``backend.kind``
    dialect: str  # sqlglot dialect of its physical SQL, a key of dialects.RULES
    schemes: tuple[str, ...]  # URL schemes of its DSNs, the usual one first; () for a file
    opener: Callable[[Source, Path], Backend]  # the backend of a source (work dir given)
    parse_dsn: Callable[[str], dict[str, Any]] | None = None  # DSN -> driver arguments

    @property
    def rules(self) -> DialectRules:
        """How its comparisons differ from the federation's."""
        return RULES[self.dialect]

    @property
    def server(self) -> bool:
        """A database server reached by a DSN, not a file in the work dir."""
        return bool(self.schemes)


def _open_sqlite(source: Source, workdir: Path) -> Backend:
    from adapters.backends.sqlite import SqliteBackend

    assert source.backend.path is not None  # checked when the config was parsed
    return SqliteBackend(source.code, workdir / source.backend.path)


def _open_postgres(source: Source, workdir: Path) -> Backend:
    from adapters.backends.postgres import PostgresBackend

    return PostgresBackend(source.code, source.backend.resolve_dsn())


def _open_mysql(source: Source, workdir: Path) -> Backend:
    from adapters.backends.mysql import MysqlBackend

    return MysqlBackend(source.code, source.backend.resolve_dsn())


#: Every backend, by kind; accord.federation.BACKEND_KINDS lists the same kinds.
BACKENDS: dict[str, BackendType] = {
    b.kind: b
    for b in (
        BackendType("sqlite", "sqlite", (), _open_sqlite),
        BackendType(
            "postgresql",
            "postgres",
            ("postgresql", "postgres"),
            _open_postgres,
            postgres_connect_args,
        ),
        BackendType("mysql", "mysql", MYSQL_SCHEMES, _open_mysql, mysql_connect_args),
    )
}


def backend_type(kind: str) -> BackendType:
    """The backend of this kind."""
    found = BACKENDS.get(kind)
    if found is None:
        raise ConfigError(f"unknown backend {kind!r}; use one of {sorted(BACKENDS)}")
    return found


def for_url(url: str) -> BackendType | None:
    """The server backend whose DSNs start like this URL, if any."""
    scheme = urlsplit(url).scheme
    return next((b for b in BACKENDS.values() if scheme in b.schemes), None)


def server_schemes(conjunction: str = "or") -> str:
    """The usual URL scheme of each server backend, for messages."""
    return f" {conjunction} ".join(f"{b.schemes[0]}://" for b in BACKENDS.values() if b.server)
