"""What an operator does with the federation CA: init, issue, renew, revoke,
publish the CRL, list.

Every operation holds the PKI directory's lock, records each certificate in
the registry (:mod:`certs.registry`) *before* writing it out (nothing the CA
signs goes unrecorded, so everything can be revoked), and writes each file
atomically (:mod:`certs.files`).

:func:`init_pki` is idempotent: run again on a complete directory it keeps
everything, and it adds any certificate that is missing or no longer right
(wrong subject, usage or names, expired, revoked, not from this CA) without
touching the CA, so a partner can be on-boarded later. A partner whose last
certificate came from a CSR is left alone: its key is its own, and a new
certificate comes only from a new CSR. It publishes the CRL when there is
none from this CA, when it is past its next update, or when it lacks a
revocation the registry records.

:func:`renew` gives a certificate's subject a new key and certificate; the
old one is *superseded*, not revoked, so a rotation has no gap: both work
until the old one expires or is revoked. :func:`revoke` marks certificates
revoked and republishes the CRL at once; every hop refuses them on their
next call (see :mod:`accord.revocation`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from accord.errors import PkiError
from accord.pki import PkiLayout, checked_name
from certs.ca import (
    _BACKDATE,
    CA_VALIDITY_DAYS,
    _ca_name,
    _checked_organization,
    _create_ca,
    _issue_leaf,
    _load_ca,
    _now,
    _sign_leaf,
    check_partner_subject,
    leaf_profile,
)
from certs.crl import CRL_DAYS, CrlInfo, _needs_publishing, _publish
from certs.csr import csr_public_key
from certs.files import _make_private_dir, _write_cert, _write_key, locked
from certs.registry import IssuedCertificate, Registry

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from cryptography.hazmat.primitives.asymmetric import ec

    from certs.ca import LeafProfile

#: How long a leaf is valid by default: the CA/Browser Forum's 397-day ceiling.
LEAF_DAYS = 397
#: Why a certificate may be revoked (x509.ReasonFlags names; the rest of
#: RFC 5280's reasons are about CAs, or, like certificate_hold, reversible).
REVOCATION_REASONS = (
    "unspecified",
    "key_compromise",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
    "privilege_withdrawn",
)


@dataclass(frozen=True)
class Issued:
    """A certificate just issued: its record, and where it was written
    (``key_path`` is None when it was signed from a CSR)."""

    certificate: IssuedCertificate
    cert_path: Path
    key_path: Path | None


# --------------------------------------------------------------------------- init


def init_pki(
    directory: Path,
    *,
    partners: Mapping[str, str],
    adapters: Iterable[str],
    days: int = LEAF_DAYS,
    force: bool = False,
    crl_days: int = CRL_DAYS,
) -> PkiLayout:
    """Create, or complete, a federation PKI directory and return its layout.

    * No CA yet (or ``force``): a new CA is created, and with it every leaf,
      a new registry and an empty CRL.
    * A CA already there: it is kept, and so is each leaf that is still right
      (see the module's docstring); anything else is (re)issued.

    ``partners`` maps a partner's name (its certificate CN) to its organization
    (O). ``adapters`` are source codes (``CA-CSC`` -> ``adapter-ca-csc``). Leaves
    are valid for ``days`` (capped at the CA's own expiry). A half-present CA
    (certificate without key, or the reverse) raises :class:`PkiError` unless
    ``force`` is given, because replacing a CA invalidates every certificate
    already handed out.
    """
    if days < 1:
        raise PkiError(f"days must be at least 1, got {days}")
    partner_items = [
        (checked_name(name, "partner name"), _checked_organization(org))
        for name, org in partners.items()
    ]
    for name, org in partner_items:
        check_partner_subject(name, org)
    adapter_codes = sorted({checked_name(code, "source code").lower() for code in adapters})

    layout = PkiLayout(Path(directory))
    _make_private_dir(layout.directory)
    with locked(layout):
        if force or not (layout.ca_cert().exists() or layout.ca_key().exists()):
            ca_cert, ca_key = _create_ca(_ca_name(), now=_now(), days=max(days, CA_VALIDITY_DAYS))
            registry = _registry(layout, ca_cert)
            registry.add(IssuedCertificate.of(ca_cert, "ca"))
            registry.save()
            _write_key(layout.ca_key(), ca_key)
            _write_cert(layout.ca_cert(), ca_cert)
        else:
            ca_cert, ca_key = _load_ca(layout)
            registry = _registry(layout, ca_cert)
            registry.add(IssuedCertificate.of(ca_cert, "ca"))  # a CA from before the registry

        profiles = [leaf_profile(layout, kind) for kind in ("broker-server", "broker-client")]
        profiles.append(leaf_profile(layout, "operator"))
        profiles += [leaf_profile(layout, "adapter", code) for code in adapter_codes]
        profiles += [leaf_profile(layout, "partner", name, org) for name, org in partner_items]
        for profile in profiles:
            latest = registry.latest(profile.kind, profile.common_name)
            if latest is not None and not latest.key_held_by_ca:
                continue  # its holder keeps the key: a new one comes from a new CSR
            kept = _current_on_disk(profile, ca_cert, registry)
            if kept is not None:
                registry.add(IssuedCertificate.of(kept, profile.kind))  # no-op if recorded
                continue
            _issue(layout, registry, ca_cert, ca_key, profile, csr_pem=None, days=days)
        registry.save()
        if _needs_publishing(layout, registry, ca_cert):
            _publish(layout, registry, ca_cert, ca_key, days=crl_days)
    return layout


def _current_on_disk(
    profile: LeafProfile, ca_cert: x509.Certificate, registry: Registry
) -> x509.Certificate | None:
    """The certificate on disk for ``profile`` if it can be kept as it is."""
    cert_path, key_path = profile.cert_path, profile.key_path
    if not (cert_path.is_file() and key_path.is_file()):
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca_cert)
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return None
    wanted = ExtendedKeyUsageOID.SERVER_AUTH if profile.server else ExtendedKeyUsageOID.CLIENT_AUTH
    recorded = registry.find(cert.serial_number)
    current = (
        cert.subject == profile.subject
        and wanted in usage
        and key.public_key() == cert.public_key()
        and cert.not_valid_after_utc > _now()
        and _names(cert) == set(profile.sans)
        and (recorded is None or recorded.status != "revoked")
    )
    return cert if current else None


def _names(cert: x509.Certificate) -> set[x509.GeneralName]:
    try:
        return set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return set()


# --------------------------------------------------------------------------- issue, renew


def issue(
    layout: PkiLayout,
    kind: str,
    name: str | None = None,
    *,
    organization: str | None = None,
    csr_pem: bytes | None = None,
    days: int = LEAF_DAYS,
) -> Issued:
    """Issue a ``kind`` certificate for ``name`` (see :func:`certs.ca.leaf_profile`).

    Without a CSR the CA makes the key and writes both files in the PKI
    directory; with ``csr_pem`` it signs the CSR's public key (see
    :mod:`certs.csr`) and writes only the certificate. A partner's
    organization defaults to the one its last certificate carried. Any valid
    certificate of the same kind and subject becomes superseded.
    """
    if kind == "ca":
        raise PkiError("the CA is created by `accord certs init`, not issued")
    with locked(layout):
        ca_cert, ca_key = _load_ca(layout)
        registry = _registry(layout, ca_cert)
        if kind == "partner" and organization is None and name:
            latest = registry.latest("partner", name)
            organization = latest.organization if latest else None
        profile = leaf_profile(layout, kind, name, organization)
        return _issue(layout, registry, ca_cert, ca_key, profile, csr_pem=csr_pem, days=days)


def renew(
    layout: PkiLayout,
    kind: str,
    name: str | None = None,
    *,
    csr_pem: bytes | None = None,
    days: int = LEAF_DAYS,
) -> Issued:
    """A new key and certificate for the subject of the last ``kind``
    certificate issued for ``name``; that one becomes superseded (it keeps
    working until it expires or is revoked). A certificate signed from a CSR
    is renewed from a new CSR: the CA never makes a key its holder kept."""
    if kind == "ca":
        raise PkiError("the CA is not renewed: re-create the PKI with `accord certs init --force`")
    with locked(layout):
        ca_cert, ca_key = _load_ca(layout)
        registry = _registry(layout, ca_cert)
        organization = None
        if kind == "partner" and name:
            latest = registry.latest("partner", name)
            organization = latest.organization if latest else None
            if latest is None:
                raise PkiError(f"no partner certificate for {name!r} to renew: issue one")
        profile = leaf_profile(layout, kind, name, organization)
        latest = registry.latest(profile.kind, profile.common_name)
        if latest is None:
            raise PkiError(f"no {kind} certificate for {profile.common_name} to renew: issue one")
        if not latest.key_held_by_ca and csr_pem is None:
            raise PkiError(
                f"the key of {profile.common_name}'s certificate is held by its holder, not "
                "the CA: renew it from a new CSR (--csr FILE)"
            )
        return _issue(layout, registry, ca_cert, ca_key, profile, csr_pem=csr_pem, days=days)


def _issue(
    layout: PkiLayout,
    registry: Registry,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    profile: LeafProfile,
    *,
    csr_pem: bytes | None,
    days: int,
) -> Issued:
    """Sign, record, then write (the caller holds the lock)."""
    if days < 1:
        raise PkiError(f"days must be at least 1, got {days}")
    now = _now()
    not_before = now - _BACKDATE
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    key = None
    if csr_pem is None:
        cert, key = _issue_leaf(
            ca_cert,
            ca_key,
            profile.subject,
            server=profile.server,
            sans=profile.sans,
            not_before=not_before,
            not_after=not_after,
        )
    else:
        cert = _sign_leaf(
            ca_cert,
            ca_key,
            csr_public_key(csr_pem, profile),
            profile.subject,
            server=profile.server,
            sans=profile.sans,
            not_before=not_before,
            not_after=not_after,
        )
    entry = IssuedCertificate.of(cert, profile.kind, key_held_by_ca=key is not None)
    registry.add(entry)
    registry.save()
    if key is not None:
        _write_key(profile.key_path, key)
    else:
        # The key beside the certificate this one replaces matches it no more.
        profile.key_path.unlink(missing_ok=True)
    _write_cert(profile.cert_path, cert)
    return Issued(entry, profile.cert_path, profile.key_path if key is not None else None)


# --------------------------------------------------------------------------- revoke, CRL


def revoke(
    layout: PkiLayout,
    serial_or_name: str,
    reason: str = "unspecified",
    *,
    kind: str | None = None,
    crl_days: int = CRL_DAYS,
) -> tuple[list[IssuedCertificate], CrlInfo]:
    """Revoke one certificate by serial (hex as ``accord certs list`` shows
    it, ``0x``-prefixed hex, or decimal), or by name (CN) every certificate
    of that subject still usable (the current one and those it superseded),
    optionally only of one ``kind``; then publish the CRL. Returns what was
    revoked and what the CRL now says."""
    if reason not in REVOCATION_REASONS:
        raise PkiError(f"unknown reason {reason!r}: use one of {', '.join(REVOCATION_REASONS)}")
    with locked(layout):
        ca_cert, ca_key = _load_ca(layout)
        registry = _registry(layout, ca_cert)
        now = _now()
        targets = _resolve(registry, serial_or_name, kind, now)
        revoked = [registry.mark_revoked(t.serial, now, reason) for t in targets]
        info = _publish(layout, registry, ca_cert, ca_key, days=crl_days)  # saves the registry
    return revoked, info


def _resolve(
    registry: Registry, target: str, kind: str | None, now: dt.datetime
) -> list[IssuedCertificate]:
    text = target.strip().lower()
    serials: set[int] = set()
    with contextlib.suppress(ValueError):
        serials.add(int(text.removeprefix("0x").replace(":", ""), 16))
    if text.isdigit():
        serials.add(int(text))
    of_kind = [c for c in registry.certificates if kind is None or c.kind == kind]
    by_serial = [c for c in of_kind if c.serial in serials]
    if len(by_serial) > 1:
        raise PkiError(f"{target!r} matches several serials: write it as 0x<hex>")
    if by_serial:
        (entry,) = by_serial
        if entry.kind == "ca":
            raise PkiError(
                "the CA cannot revoke itself: re-create the PKI with `accord certs init --force`"
            )
        if entry.status == "revoked" and entry.revoked_at is not None:
            raise PkiError(
                f"certificate {entry.serial_hex} was already revoked on "
                f"{entry.revoked_at:%Y-%m-%d %H:%M} UTC"
            )
        return by_serial
    by_name = [
        c
        for c in of_kind
        if c.common_name == target
        and c.kind != "ca"
        and c.status != "revoked"
        and c.not_after > now
    ]
    if not by_name:
        raise PkiError(
            f"no certificate with serial or name {target!r} that is still usable "
            "(see `accord certs list`)"
        )
    return by_name


def publish_crl(layout: PkiLayout, days: int = CRL_DAYS) -> CrlInfo:
    """Sign and write a new CRL (next update ``days`` from now)."""
    with locked(layout):
        ca_cert, ca_key = _load_ca(layout)
        return _publish(layout, _registry(layout, ca_cert), ca_cert, ca_key, days=days)


def list_certificates(layout: PkiLayout) -> list[IssuedCertificate]:
    """Every certificate the CA issued, in the order it issued them."""
    try:
        ca_cert = x509.load_pem_x509_certificate(layout.ca_cert().read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(
            f"there is no readable federation CA in {layout.directory}: run `accord certs init`"
        ) from exc
    return list(_registry(layout, ca_cert).certificates)


def _registry(layout: PkiLayout, ca_cert: x509.Certificate) -> Registry:
    return Registry.load(layout.registry(), ca_cert.fingerprint(hashes.SHA256()).hex())
