"""The Ed25519 key that signs the audit trail's checkpoints, and the public
key a verifier trusts.

It exists apart from the writer because the verifier and ``accord audit
verify`` need the public half without ever writing a line: loading (or
creating, once, mode 0600) the private key, the hex spelling of a public
key that checkpoints embed, and the *pin*.

A trail is only as trustworthy as the key it is checked against: the key
file beside the trail, or the keys its own checkpoints embed, can be
replaced by whoever rewrites the trail. So a verifier is given the public
key explicitly (:func:`load_public_key`: a hex or PEM file kept elsewhere),
or reads the pin (:func:`pin_public_key`): the hex public key written, once,
the first time the broker signs with its key, to a file outside the audit
directory. A broker whose key no longer matches its pin refuses to start.
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


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key in ``path``: 64 hex digits (as a checkpoint and
    the pin spell it) or a PEM public key; ConfigError otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the public key {path}: {exc.strerror}") from exc
    text = data.decode("ascii", "replace").strip()
    key: object = public_key_from_hex(text.lower())
    if key is None and text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            key = None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(
            f"{path} holds no Ed25519 public key (64 hex digits, or a PEM public key)"
        )
    return key


def pin_public_key(path: Path, key: Ed25519PublicKey) -> None:
    """Pin ``key`` at ``path`` on first use; refuse a key that differs from the pin.

    The pin is written once (mode 0644: it is public) and never replaced, so
    a signing key swapped later is caught rather than trusted.
    """
    path = Path(path)
    wanted = public_hex(key)
    try:
        pinned = load_public_key(path) if path.exists() else None
    except ConfigError as exc:
        raise ConfigError(f"the audit key pin is unusable: {exc}") from exc
    if pinned is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, f"{wanted}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    if public_hex(pinned) != wanted:
        raise ConfigError(
            f"the audit signing key is not the key pinned in {path} ({public_hex(pinned)}): "
            "a replaced key would sign a rewritten trail; restore the key, or, if the "
            "change is intended, archive the old trail and its pin first"
        )


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
