"""Writing the PKI directory: private from the start, atomic, one writer at a time.

Private keys are PEM PKCS#8, unencrypted, and are created with mode 0600 from
the start (never written first and narrowed afterwards); the directory is
created 0700. Every file is written aside and renamed over its name, so a
reader (a server reloading its certificate or the CRL) never sees half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from accord.errors import PkiError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from accord.pki import PkiLayout


def _make_private_dir(directory: Path) -> None:
    if directory.is_dir():
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    directory.mkdir(mode=0o700)
    # mkdir's mode is filtered by the umask; a private directory must not be wider.
    os.chmod(directory, 0o700)


@contextlib.contextmanager
def locked(layout: PkiLayout) -> Iterator[None]:
    """Hold the directory's lock: the CA's changes (registry, CRL number) are
    read-modify-write, and two operators running ``accord certs`` at once must
    not lose one another's. Not re-entrant: take it once per operation."""
    try:
        fd = os.open(layout.lock(), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileNotFoundError as exc:
        raise PkiError(
            f"there is no federation PKI in {layout.directory}: run `accord certs init`"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    _write_atomic(path, data, mode=0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    _write_atomic(path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to ``path`` via a fresh temporary file created with ``mode``.

    The temporary file is created with its final permissions (O_EXCL, so never
    an existing file with wider ones) and then renamed over ``path``; a reader
    never sees a half-written file and a key is never readable by others.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
