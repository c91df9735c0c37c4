"""Certificates only tests need: a partner certificate with any validity
window (expired, not yet valid), and a client certificate from a rogue CA.

They are issued exactly as certs.ca issues a partner's (same key type,
extensions and signature), so a test that is refused is refused for the one
thing it changed. Built on certs.ca's private issuing functions on purpose:
the production modules keep them private and issue only current
certificates, each one recorded in the registry (these are not).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from accord.pki import PkiLayout, checked_name
from certs.ca import (
    _BACKDATE,
    CA_VALIDITY_DAYS,
    _ca_name,
    _checked_organization,
    _create_ca,
    _issue_leaf,
    _load_ca,
    _name,
    _now,
)
from certs.files import _make_private_dir, _write_cert, _write_key

__all__ = ["create_rogue_ca_client", "issue_client_cert"]


def issue_client_cert(
    layout: PkiLayout,
    name: str,
    organization: str,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    out: tuple[Path, Path] | None = None,
) -> tuple[Path, Path]:
    """Issue a partner client certificate with exactly the validity given.

    For tests that need an expired or not-yet-valid certificate; the
    datetimes must be timezone-aware. Writes to ``layout.partner(name)`` unless
    ``out`` (cert path, key path) is given, and returns the paths written.
    """
    checked_name(name, "partner name")
    _checked_organization(organization)
    if not_before.tzinfo is None or not_after.tzinfo is None:
        raise ValueError("not_before and not_after must be timezone-aware datetimes")
    if not_after <= not_before:
        raise ValueError("not_after must be later than not_before")
    ca_cert, ca_key = _load_ca(layout)
    cert, key = _issue_leaf(
        ca_cert,
        ca_key,
        _name(name, organization),
        server=False,
        not_before=not_before,
        not_after=not_after,
    )
    cert_path, key_path = out if out is not None else layout.partner(name)
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert_path, key_path


def create_rogue_ca_client(
    directory: Path, name: str, organization: str
) -> tuple[Path, Path, Path]:
    """A stand-alone CA and a client certificate from it, for negative tests.

    The rogue CA deliberately carries the *same* subject as the federation CA,
    so only a real signature check (not a name comparison) rejects its
    certificates. Writes ``rogue-ca.pem``, ``rogue-<name>.pem`` and
    ``rogue-<name>.key`` in ``directory`` and returns (ca_pem, cert_pem, key_pem).
    The rogue CA's key is not kept.
    """
    checked_name(name, "name")
    _checked_organization(organization)
    directory = Path(directory)
    _make_private_dir(directory)
    now = _now()
    ca_cert, ca_key = _create_ca(_ca_name(), now=now, days=CA_VALIDITY_DAYS)
    cert, key = _issue_leaf(
        ca_cert,
        ca_key,
        _name(name, organization),
        server=False,
        not_before=now - _BACKDATE,
        not_after=now + dt.timedelta(days=30),
    )
    ca_path = directory / "rogue-ca.pem"
    cert_path = directory / f"rogue-{name}.pem"
    key_path = directory / f"rogue-{name}.key"
    _write_cert(ca_path, ca_cert)
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return ca_path, cert_path, key_path


def issue_extra(
    layout: PkiLayout, kind: str, name: str, organization: str, directory: Path
) -> tuple[Path, Path]:
    """A second certificate of ``kind`` for ``name``, recorded by the CA like
    any other (so it can be revoked by serial) but written to ``directory``:
    the federation's own files, which other tests use, stay as they are.
    ``name`` is the CN for the federation's kinds (``adapter-ca-csc``)."""
    from dataclasses import replace

    from certs.ca import leaf_profile
    from certs.files import locked
    from certs.lifecycle import _issue, _registry

    code = name.removeprefix("adapter-").upper() if kind == "adapter" else name
    profile = leaf_profile(layout, kind, code, organization if kind == "partner" else None)
    profile = replace(
        profile,
        cert_path=directory / f"extra-{kind}-{name}.pem",
        key_path=directory / f"extra-{kind}-{name}.key",
    )
    with locked(layout):
        ca_cert, ca_key = _load_ca(layout)
        issued = _issue(
            layout, _registry(layout, ca_cert), ca_cert, ca_key, profile, csr_pem=None, days=30
        )
    assert issued.key_path is not None
    return issued.cert_path, issued.key_path


def revoke(layout: PkiLayout, serial: int) -> None:
    """Revokes one certificate by serial and publishes the list, as
    ``accord certs revoke`` does."""
    from certs.lifecycle import revoke as revoke_certificate

    revoke_certificate(layout, f"0x{serial:x}", "key_compromise")
