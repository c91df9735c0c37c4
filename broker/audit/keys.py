"""The Ed25519 key that signs the audit trail's checkpoints.

It exists apart from the writer because the verifier and ``accord audit
verify`` need the public half without ever writing a line: loading (or
creating, once, mode 0600) the private key, and the hex spelling of a
public key that checkpoints embed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from accord.errors import ConfigError

_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


def public_hex(key: Ed25519PublicKey) -> str:
    """The hex of the raw public key, as a checkpoint's ``public_key`` spells it."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def public_key_from_hex(text: str) -> Ed25519PublicKey | None:
    """The public key ``public_hex`` spelled as ``text``; None if malformed.

    >>> public_key_from_hex("not hex") is None
    True
    """
    if not _HEX64_RE.match(text):
        return None
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load the Ed25519 key at ``path`` (PEM PKCS8), creating it (0600) if absent."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(
                f"audit signing key {path.name} is not an Ed25519 private key"
            ) from None
        return key
    new_key = Ed25519PrivateKey.generate()
    pem = new_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        view = memoryview(pem)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return new_key
