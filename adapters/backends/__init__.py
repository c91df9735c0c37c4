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
        return SqliteBackend(workdir / source.backend.path)
    raise ConfigError(
        f"source {source.code}: backend {source.backend.kind!r} is not available in this build"
    )


__all__ = ["Backend", "open_backend"]
