"""The federation CA, and what each kind of certificate it issues is.

Every hop in Accord is mutual TLS, and every certificate is issued by one
federation CA (EC P-256, ECDSA with SHA-256; path length 0). A leaf is one of
these kinds (:func:`leaf_profile`)::

    kind           CN                  O                  usage   files
    broker-server  accord-broker       Accord Federation  server  broker-server.pem, .key
    broker-client  accord-broker       Accord Federation  client  broker-client.pem, .key
    adapter        adapter-<code>      Accord Federation  server  adapter-<code>.pem, .key
    partner        <partner name>      <its organization> client  partner-<name>.pem, .key
    operator       accord-operator     Accord Federation  client  operator.pem, .key

Server certificates name ``localhost``, 127.0.0.1 and ::1; an adapter's also
names ``adapter-<code>`` (``adapter-ca-csc``), the name the broker pins each
source's channel to, so one adapter's certificate cannot answer for another.
The names of the federation's own certificates, and its organization, are
reserved: no partner may carry them (:func:`check_partner_subject`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accord.errors import PkiError
from accord.pki import (
    BROKER_COMMON_NAME,
    FEDERATION_ORGANIZATION,
    OPERATOR_COMMON_NAME,
    PkiLayout,
    adapter_identity,
    checked_name,
)

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

__all__ = [
    "BROKER_COMMON_NAME",
    "CA_COMMON_NAME",
    "FEDERATION_ORGANIZATION",
    "KINDS",
    "LEAF_KINDS",
    "OPERATOR_COMMON_NAME",
    "CertInfo",
    "Kind",
    "LeafProfile",
    "PkiError",
    "PkiLayout",
    "certificate_info",
    "check_partner_subject",
    "leaf_profile",
]

#: Subject of the federation CA.
CA_COMMON_NAME = "Accord Federation CA"

Kind = Literal["ca", "broker-server", "broker-client", "adapter", "partner", "operator"]
KINDS: tuple[Kind, ...] = get_args(Kind)
LEAF_KINDS: tuple[Kind, ...] = tuple(k for k in KINDS if k != "ca")

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
class LeafProfile:
    """What one certificate must be: its subject, usage, names and files."""

    kind: Kind
    common_name: str
    organization: str
    server: bool
    sans: tuple[x509.GeneralName, ...]
    cert_path: Path
    key_path: Path

    @property
    def subject(self) -> x509.Name:
        return _name(self.common_name, self.organization)


def leaf_profile(
    layout: PkiLayout, kind: str, name: str | None = None, organization: str | None = None
) -> LeafProfile:
    """The profile of a ``kind`` certificate for ``name``.

    ``name`` is the partner's name for ``partner`` (which also needs its
    ``organization``), the source code for ``adapter`` (``CA-CSC``), and may be
    left out (or be the fixed CN) for the broker's and the operator's.
    """
    if kind not in LEAF_KINDS:
        raise PkiError(f"unknown certificate kind {kind!r}: use one of {', '.join(LEAF_KINDS)}")
    leaf_kind: Kind = kind
    fed = FEDERATION_ORGANIZATION
    if leaf_kind in ("broker-server", "broker-client", "operator"):
        cn = OPERATOR_COMMON_NAME if kind == "operator" else BROKER_COMMON_NAME
        if name not in (None, "", cn):
            raise PkiError(f"a {kind} certificate is always issued to {cn}, not {name!r}")
        server = kind == "broker-server"
        cert_path, key_path = {
            "broker-server": layout.broker_server,
            "broker-client": layout.broker_client,
            "operator": layout.operator,
        }[kind]()
        sans = _SERVER_SANS if server else ()
        return LeafProfile(leaf_kind, cn, fed, server, sans, cert_path, key_path)
    if kind == "adapter":
        if not name:
            raise PkiError("an adapter certificate needs the source code (--name CA-CSC)")
        cn = adapter_identity(name)
        sans = (*_SERVER_SANS, x509.DNSName(cn))
        return LeafProfile("adapter", cn, fed, True, sans, *layout.adapter(name))
    if not name:
        raise PkiError("a partner certificate needs the partner's name (--name)")
    if organization is None:
        raise PkiError(f"a certificate for partner {name!r} needs its organization (--org)")
    check_partner_subject(checked_name(name, "partner name"), organization)
    return LeafProfile(
        "partner", name, _checked_organization(organization), False, (), *layout.partner(name)
    )


def check_partner_subject(name: str, organization: str) -> None:
    """Refuse a partner that would carry a name the federation's own hops use:
    an adapter trusts the broker by its CN, so a partner called
    ``accord-broker`` must never exist."""
    folded = name.casefold()
    reserved = {BROKER_COMMON_NAME, OPERATOR_COMMON_NAME, CA_COMMON_NAME.casefold()}
    if folded in reserved or folded.startswith("adapter-"):
        raise PkiError(
            f"the name {name!r} is reserved for the federation's own certificates; "
            "choose another partner name"
        )
    if " ".join(organization.split()).casefold() == FEDERATION_ORGANIZATION.casefold():
        raise PkiError(
            f"the organization {organization!r} is reserved for the federation itself; "
            "give the partner's own organization"
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
    sans: tuple[x509.GeneralName, ...] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new key and its certificate (server certificates name ``sans``,
    by default the loopback names)."""
    key = _new_key()
    cert = _sign_leaf(
        ca_cert,
        ca_key,
        key.public_key(),
        subject,
        server=server,
        sans=(_SERVER_SANS if server else ()) if sans is None else sans,
        not_before=not_before,
        not_after=not_after,
    )
    return cert, key


def _sign_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    public: CertificatePublicKeyTypes,
    subject: x509.Name,
    *,
    server: bool,
    sans: tuple[x509.GeneralName, ...],
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """A certificate for ``public`` (whoever holds its private key)."""
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
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


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


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    attributes = name.get_attributes_for_oid(oid)
    if not attributes:
        return None
    value = attributes[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


# --------------------------------------------------------------------------- checking


def _checked_organization(value: str) -> str:
    if not value.strip() or len(value) > 64:
        raise PkiError(f"invalid organization {value!r}: must be 1-64 characters")
    return value
