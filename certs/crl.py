"""Publishing the federation's certificate revocation list, ``crl.pem``.

An X.509 v2 CRL signed by the federation CA (ECDSA with SHA-256) listing
every revoked certificate of the registry that has not yet expired (an
expired certificate is refused by TLS anyway, so it leaves the list). Each
publication carries a CRL number one higher than any before it (kept in the
registry, so deleting ``crl.pem`` does not make the number start again and
the hops refuse the new list as older), its this-update time (now) and a
next-update time ``days`` later, :data:`CRL_DAYS` (7) by default: the hops
refuse partners once that time passes (see :mod:`accord.revocation`), so an
operator republishes at least weekly (``accord certs crl``, e.g. from cron)
and at once after each revocation (``accord certs revoke`` does that itself).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from accord.errors import PkiError
from certs.ca import _now
from certs.files import _write_atomic

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from accord.pki import PkiLayout
    from certs.registry import Registry

#: Days from one publication to its next-update time.
CRL_DAYS = 7


@dataclass(frozen=True)
class CrlInfo:
    """What a publication said."""

    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    revoked: int


def _publish(
    layout: PkiLayout,
    registry: Registry,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    days: int = CRL_DAYS,
) -> CrlInfo:
    """Sign and write a new list from ``registry`` (the caller holds the lock).

    The registry is saved with the new number first: if writing the list then
    fails, the next publication simply skips a number.
    """
    if days < 1:
        raise PkiError(f"a revocation list must be valid for at least 1 day, got {days}")
    now = _now()
    previous = _published(layout, ca_cert)
    number = max(registry.crl_number, previous.number if previous else 0) + 1
    registry.crl_number = number
    registry.save()
    next_update = now + dt.timedelta(days=days)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(_authority_key_identifier(ca_cert, ca_key), critical=False)
    )
    listed = [c for c in registry.revoked() if c.not_after > now and c.revoked_at is not None]
    for entry in listed:
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)  # type: ignore[arg-type]
        )
        reason = entry.revocation_reason
        if reason and reason != "unspecified":  # RFC 5280: unspecified is said by omission
            revoked = revoked.add_extension(
                x509.CRLReason(x509.ReasonFlags[reason]), critical=False
            )
        builder = builder.add_revoked_certificate(revoked.build())
    crl = builder.sign(ca_key, hashes.SHA256())
    _write_atomic(layout.crl(), crl.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return CrlInfo(number, now, next_update, len(listed))


def _authority_key_identifier(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _published(layout: PkiLayout, ca_cert: x509.Certificate) -> CrlInfo | None:
    """The list in ``crl.pem`` if it is one this CA signed, else None."""
    try:
        crl = x509.load_pem_x509_crl(layout.crl().read_bytes())
    except (OSError, ValueError):
        return None
    public = ca_cert.public_key()
    if crl.issuer != ca_cert.subject or not crl.is_signature_valid(public):  # type: ignore[arg-type]
        return None
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = 0
    next_update = crl.next_update_utc
    if next_update is None:
        return None
    return CrlInfo(number, crl.last_update_utc, next_update, len(list(crl)))


def _needs_publishing(layout: PkiLayout, registry: Registry, ca_cert: x509.Certificate) -> bool:
    """True if ``crl.pem`` is missing, not this CA's, past its next update, or
    short of a revocation the registry records (a revoke interrupted between
    saving the registry and writing the list)."""
    published = _published(layout, ca_cert)
    if published is None or published.next_update <= _now():
        return True
    crl = x509.load_pem_x509_crl(layout.crl().read_bytes())
    listed = {entry.serial_number for entry in crl}
    now = _now()
    return any(c.serial not in listed for c in registry.revoked() if c.not_after > now)
