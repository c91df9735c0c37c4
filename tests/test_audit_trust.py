"""`accord audit verify` trusts only a key given explicitly or pinned at first
use: a trail rewritten and re-signed with another key never verifies as
intact, whether that key replaced the key file or no key file is left."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.audit.keys import load_public_key, pin_public_key, public_hex
from accord.audit.log import AuditLog
from accord.errors import ConfigError
from accord.workdir import Workdir
from app.cli import main
from app.serve import open_audit


def write_trail(directory: Path, key: Ed25519PrivateKey, partner: str) -> None:
    with AuditLog(directory, key, checkpoint_every=2) as log:
        for i in range(5):
            log.append({"event": "query", "partner": partner, "sql": f"SELECT {i}"})


def write_key_file(path: Path, key: Ed25519PrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Workdir:
    """A work dir whose broker signed its trail with its key and pinned it."""
    wd = Workdir(tmp_path / "wd")
    key = Ed25519PrivateKey.generate()
    write_key_file(wd.audit_key(), key)
    pin_public_key(wd.audit_key_pin(), key.public_key())
    write_trail(wd.audit_dir(), key, "crown_attorney")
    return wd


def rewrite_with_new_key(wd: Workdir) -> Ed25519PrivateKey:
    """The attack: a whole new trail, signed by a new key that replaces the key file."""
    forger = Ed25519PrivateKey.generate()
    for path in wd.audit_dir().iterdir():
        path.unlink()
    write_trail(wd.audit_dir(), forger, "police")
    write_key_file(wd.audit_key(), forger)
    return forger


def verify_cli(wd: Workdir, *extra: str) -> int:
    return main(["audit", "verify", "--workdir", str(wd.path), *extra])


def test_the_pinned_trail_verifies(workdir, capsys):
    assert verify_cli(workdir) == 0
    assert "intact" in capsys.readouterr().out


def test_a_trail_resigned_with_a_replacement_key_file_is_tampered(workdir, capsys):
    rewrite_with_new_key(workdir)
    assert verify_cli(workdir) == 1
    assert "TAMPERED" in capsys.readouterr().out


def test_a_resigned_trail_with_no_key_file_is_tampered(workdir, capsys):
    rewrite_with_new_key(workdir)
    workdir.audit_key().unlink()
    assert verify_cli(workdir) == 1
    assert "TAMPERED" in capsys.readouterr().out


def test_without_a_pin_or_a_public_key_nothing_is_called_intact(workdir, capsys):
    workdir.audit_key_pin().unlink()  # the key file is still there: not trusted
    assert verify_cli(workdir) == 2
    out = capsys.readouterr().out
    assert "intact" not in out.replace("cannot call the trail intact", "")
    assert "--public-key" in out


@pytest.mark.parametrize("spelling", ["hex", "pem"])
def test_an_explicit_public_key_decides(workdir, tmp_path, capsys, spelling):
    forger = rewrite_with_new_key(workdir)
    workdir.audit_key_pin().unlink()
    public = forger.public_key()
    given = tmp_path / f"forger.{spelling}"
    if spelling == "hex":
        given.write_text(public_hex(public).upper() + "\n")
    else:
        given.write_bytes(
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    # The forger's own key vouches for the forger's trail; any other key refuses it.
    assert verify_cli(workdir, "--public-key", str(given)) == 0
    other = tmp_path / "other.hex"
    other.write_text(public_hex(Ed25519PrivateKey.generate().public_key()))
    capsys.readouterr()
    assert verify_cli(workdir, "--public-key", str(other)) == 1
    assert "TAMPERED" in capsys.readouterr().out


def test_a_public_key_file_that_is_not_one_is_a_clear_error(workdir, tmp_path, capsys):
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    assert verify_cli(workdir, "--public-key", str(bad)) == 2
    assert "no Ed25519 public key" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        load_public_key(tmp_path / "missing.hex")


def test_the_pin_is_written_once_and_a_replaced_key_is_refused(tmp_path):
    pin = tmp_path / "audit-key.pin"
    first = Ed25519PrivateKey.generate().public_key()
    pin_public_key(pin, first)
    pin_public_key(pin, first)  # the same key: nothing to do
    assert pin.read_text().strip() == public_hex(first)
    with pytest.raises(ConfigError, match="not the key pinned"):
        pin_public_key(pin, Ed25519PrivateKey.generate().public_key())
    assert load_public_key(pin) == first


def test_the_broker_pins_its_key_at_first_start_and_refuses_a_swapped_one(tmp_path):
    wd = Workdir(tmp_path / "wd")
    wd.audit_key().parent.mkdir(parents=True)  # `accord certs init` made it
    open_audit(wd, "broker@test").close()
    assert wd.audit_key_pin().is_file()
    assert verify_cli(wd) == 0
    write_key_file(wd.audit_key(), Ed25519PrivateKey.generate())
    with pytest.raises(ConfigError, match="not the key pinned"):
        open_audit(wd, "broker@test")
