"""Database backends behind one small interface (see ``base.Backend``).

Which backends exist, and what each one is, is ``registry.BACKENDS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from accord.errors import ConfigError
from adapters.backends.base import Backend
from adapters.backends.registry import BACKENDS

if TYPE_CHECKING:
    from pathlib import Path

    from accord.federation import Source


def open_backend(source: Source, workdir: Path) -> Backend:
    """The backend named in a source's configuration."""
    backend_type = BACKENDS.get(source.backend.kind)
    if backend_type is None:
        raise ConfigError(f"source {source.code}: unknown backend {source.backend.kind!r}")
    return backend_type.opener(source, workdir)


__all__ = ["Backend", "open_backend"]
