"""Database backends behind one small interface (see ``base.Backend``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from accord.errors import ConfigError
from adapters.backends.base import Backend

if TYPE_CHECKING:
    from pathlib import Path

    from accord.federation import Source


def open_backend(source: Source, workdir: Path) -> Backend:
    """The backend named in a source's configuration."""
    if source.backend.kind == "sqlite":
        from adapters.backends.sqlite import SqliteBackend

        assert source.backend.path is not None  # checked when the config was parsed
        return SqliteBackend(source.code, workdir / source.backend.path)
    if source.backend.kind == "postgresql":
        from adapters.backends.postgres import PostgresBackend

        return PostgresBackend(source.code, source.backend.resolve_dsn())
    if source.backend.kind == "mysql":
        from adapters.backends.mysql import MysqlBackend

        return MysqlBackend(source.code, source.backend.resolve_dsn())
    raise ConfigError(f"source {source.code}: unknown backend {source.backend.kind!r}")


__all__ = ["Backend", "open_backend"]
