"""The demo's local users file: people of the partner with argon2 password hashes.

A YAML mapping ``users: {name: {password_hash: "$argon2id$...", display: ...}}``.
Production signs people in with OpenID Connect (``app.console.oidc``); this
file is for the demo and for a partner without an identity provider.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from accord.errors import ConfigError
from accord.workdir import write_text_atomically

if TYPE_CHECKING:
    from pathlib import Path

#: A user name: what the broker's audit records as the end user (printable ASCII).
USER_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")

_HASHER = PasswordHasher()
#: Verified against when the name is unknown, so a wrong name costs what a wrong password does.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class LocalUser:
    name: str
    display: str
    password_hash: str


class LocalUsers:
    def __init__(self, users: dict[str, LocalUser]) -> None:
        self._users = users

    @classmethod
    def load(cls, path: Path) -> LocalUsers:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"console users file {path}: {exc}") from exc
        users: dict[str, LocalUser] = {}
        for name, entry in (doc.get("users") or {}).items():
            if not isinstance(name, str) or not USER_NAME.match(name):
                raise ConfigError(f"console users file {path}: bad user name {name!r}")
            if not isinstance(entry, dict) or not str(entry.get("password_hash", "")).startswith(
                "$argon2"
            ):
                raise ConfigError(
                    f"console users file {path}: {name} needs an argon2 password_hash"
                )
            users[name] = LocalUser(name, str(entry.get("display") or name), entry["password_hash"])
        return cls(users)

    def verify(self, name: str, password: str) -> LocalUser | None:
        """The user when ``password`` is theirs; None otherwise (unknown or wrong alike)."""
        user = self._users.get(name)
        try:
            _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        return user


def write_users_file(path: Path, users: dict[str, tuple[str, str]]) -> None:
    """Write ``{name: (display, password)}`` as a users file (hashes only), mode 0600."""
    doc = {
        "users": {
            name: {"display": display, "password_hash": _HASHER.hash(password)}
            for name, (display, password) in users.items()
        }
    }
    write_text_atomically(path, yaml.safe_dump(doc, sort_keys=True))
    path.chmod(0o600)


def demo_users(path: Path, name: str = "demo.attorney") -> tuple[str, str]:
    """A fresh demo user with a generated password (printed once by the caller)."""
    password = secrets.token_urlsafe(12)
    write_users_file(path, {name: ("Demo attorney", password)})
    return name, password
