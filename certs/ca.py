"""The federation's PKI: one private CA, and the certificates every mTLS hop uses.

Every hop in Accord is mutual TLS, and every certificate is issued by one
federation CA (EC P-256, ECDSA with SHA-256)::

    <dir>/ca.pem, ca.key                      the federation CA (path length 0)
    <dir>/broker-server.pem, .key             the broker's server cert
    <dir>/broker-client.pem, .key             the broker's client cert (to call adapters)
    <dir>/adapter-<code>.pem, .key            one server cert per adapter (code lowercased)
    <dir>/partner-<name>.pem, .key            one client cert per partner (CN = partner name)

:func:`init_pki` is idempotent: run again on a complete directory it keeps
everything, and it adds any partner or adapter certificate that is missing
without touching the CA, so a partner can be on-boarded later. Private keys are
PEM PKCS#8, unencrypted, and are created with mode 0600 from the start (never
written first and narrowed afterwards); the directory is created 0700.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accord.errors import PkiError
from accord.pki import (
    BROKER_COMMON_NAME,
    FEDERATION_ORGANIZATION,
    PkiLayout,
    adapter_identity,
    checked_name,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "BROKER_COMMON_NAME",
    "CA_COMMON_NAME",
    "FEDERATION_ORGANIZATION",
    "CertInfo",
    "PkiError",
    "PkiLayout",
    "certificate_info",
    "init_pki",
]

#: Subject of the federation CA.
CA_COMMON_NAME = "Accord Federation CA"

#: The CA outlives the leaves: it is kept across runs while leaves are added.
CA_VALIDITY_DAYS = 3650
#: Leaves start slightly in the past so peers with a little clock skew accept them.
_BACKDATE = dt.timedelta(minutes=5)

_SERVER_SANS: tuple[x509.GeneralName, ...] = (
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
)


@dataclass(frozen=True)
class CertInfo:
    """The parts of a certificate an operator or a test looks at.

    ``common_name`` and ``issuer_common_name`` are ``""`` when the name has no
    CN; ``organization`` is ``None`` when it has no O. Times are aware UTC.
    """

    common_name: str
    organization: str | None
    serial: int
    fingerprint_sha256: str
    not_before: dt.datetime
    not_after: dt.datetime
    issuer_common_name: str


# --------------------------------------------------------------------------- public API


def init_pki(
    directory: Path,
    *,
    partners: Mapping[str, str],
    adapters: Iterable[str],
    days: int = 397,
    force: bool = False,
) -> PkiLayout:
    """Create, or complete, a federation PKI directory and return its layout.

    * No CA yet (or ``force``): a new CA is created, and with it every leaf.
    * A CA already there: it is kept. Each leaf is kept if its certificate and
      key are both present, match each other, carry the expected subject and
      usage, have not expired and were issued by this CA; anything else is
      (re)issued. So adding a partner
      or an adapter later just adds its files.

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
    adapter_codes = sorted({checked_name(code, "source code").lower() for code in adapters})

    layout = PkiLayout(Path(directory))
    _make_private_dir(layout.directory)

    now = _now()
    if force or not (layout.ca_cert().exists() or layout.ca_key().exists()):
        ca_cert, ca_key = _create_ca(_ca_name(), now=now, days=max(days, CA_VALIDITY_DAYS))
        _write_key(layout.ca_key(), ca_key)
        _write_cert(layout.ca_cert(), ca_cert)
    else:
        ca_cert, ca_key = _load_ca(layout)

    not_before = now - _BACKDATE
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    fed_org = FEDERATION_ORGANIZATION

    wanted: list[tuple[tuple[Path, Path], x509.Name, bool]] = [
        (layout.broker_server(), _name(BROKER_COMMON_NAME, fed_org), True),
        (layout.broker_client(), _name(BROKER_COMMON_NAME, fed_org), False),
    ]
    wanted += [
        (layout.adapter(code), _name(adapter_identity(code), fed_org), True)
        for code in adapter_codes
    ]
    wanted += [(layout.partner(name), _name(name, org), False) for name, org in partner_items]

    for (cert_path, key_path), subject, server in wanted:
        if _leaf_is_current(cert_path, key_path, subject, ca_cert, server=server):
            continue
        cert, key = _issue_leaf(
            ca_cert,
            ca_key,
            subject,
            server=server,
            not_before=not_before,
            not_after=not_after,
        )
        _write_key(key_path, key)
        _write_cert(cert_path, cert)
    return layout


def certificate_info(pem: bytes) -> CertInfo:
    """Summarise the first certificate in ``pem``."""
    cert = x509.load_pem_x509_certificate(pem)
    return CertInfo(
        common_name=_attribute(cert.subject, NameOID.COMMON_NAME) or "",
        organization=_attribute(cert.subject, NameOID.ORGANIZATION_NAME),
        serial=cert.serial_number,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        issuer_common_name=_attribute(cert.issuer, NameOID.COMMON_NAME) or "",
    )


# --------------------------------------------------------------------------- issuing


def _now() -> dt.datetime:
    # Certificates carry whole seconds; drop the rest so comparisons are exact.
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_name() -> x509.Name:
    return _name(CA_COMMON_NAME, FEDERATION_ORGANIZATION)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _create_ca(
    subject: x509.Name, *, now: dt.datetime, days: int
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    *,
    server: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    public = key.public_key()
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(aki, critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_server_sans(subject)), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def _server_sans(subject: x509.Name) -> list[x509.GeneralName]:
    """The server's own name (its CN: what a client that pins it dials, e.g.
    ``adapter-ca-csc``) and the loopback names an operator's tools use."""
    common_name = _attribute(subject, NameOID.COMMON_NAME)
    own = [x509.DNSName(common_name)] if common_name else []
    return [*own, *_SERVER_SANS]


# --------------------------------------------------------------------------- reading


def _load_ca(layout: PkiLayout) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = layout.ca_cert(), layout.ca_key()
    missing = [str(p) for p in (cert_path, key_path) if not p.exists()]
    if missing:
        raise PkiError(
            f"the federation CA in {layout.directory} is incomplete (missing "
            f"{', '.join(missing)}); restore it, or re-create the whole PKI with force "
            "(which invalidates every certificate already issued)"
        )
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"cannot read the federation CA in {layout.directory}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{key_path} is not an EC private key")
    if key.public_key() != cert.public_key():
        raise PkiError(f"{key_path} is not the private key of {cert_path}")
    return cert, key


def _leaf_is_current(
    cert_path: Path,
    key_path: Path,
    subject: x509.Name,
    ca_cert: x509.Certificate,
    *,
    server: bool,
) -> bool:
    """True if the pair on disk can be kept as it is."""
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca_cert)
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    wanted = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    if server and not _has_sans(cert, _server_sans(subject)):
        return False  # issued before servers carried their own name
    return (
        cert.subject == subject
        and wanted in usage
        and key.public_key() == cert.public_key()
        and cert.not_valid_after_utc > _now()
    )


def _has_sans(cert: x509.Certificate, wanted: list[x509.GeneralName]) -> bool:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return all(name in sans for name in wanted)


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    attributes = name.get_attributes_for_oid(oid)
    if not attributes:
        return None
    value = attributes[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


# --------------------------------------------------------------------------- writing


def _checked_organization(value: str) -> str:
    if not value.strip() or len(value) > 64:
        raise PkiError(f"invalid organization {value!r}: must be 1-64 characters")
    return value


def _make_private_dir(directory: Path) -> None:
    if directory.is_dir():
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    directory.mkdir(mode=0o700)
    # mkdir's mode is filtered by the umask; a private directory must not be wider.
    os.chmod(directory, 0o700)


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
