"""Certificate signing requests: a partner keeps its private key.

The partner runs :func:`make_csr` (``accord certs csr``) and sends the CSR;
the federation signs it (``accord certs issue --kind partner --csr FILE``)
and sends back only the certificate. The CA takes nothing from a CSR but its
public key, and only once the CSR's own signature proves the sender holds
the private half: the subject comes from the federation's records and the
command's arguments, every requested extension is ignored, and a CSR whose
subject names someone else is refused rather than quietly corrected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from accord.errors import PkiError
from accord.pki import checked_name
from certs.ca import (
    _attribute,
    _checked_organization,
    _name,
    _new_key,
    check_partner_subject,
)
from certs.files import _make_private_dir, _write_atomic, _write_key

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

    from certs.ca import LeafProfile

#: Keys the hops' TLS takes, and at least as strong as the CA's own.
_CURVES = (ec.SECP256R1, ec.SECP384R1)
_MIN_RSA_BITS = 2048


def make_csr(name: str, organization: str, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.key`` (0600, never overwritten) and
    ``<name>.csr``; return their paths."""
    checked_name(name, "partner name")
    check_partner_subject(name, _checked_organization(organization))
    key_path, csr_path = out_dir / f"{name}.key", out_dir / f"{name}.csr"
    if key_path.exists():
        raise PkiError(
            f"{key_path} already exists, and a private key is never overwritten: "
            "use it, or choose another --out"
        )
    _make_private_dir(out_dir)
    key = _new_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(name, organization))
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_atomic(csr_path, csr.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return key_path, csr_path


def csr_public_key(pem: bytes, profile: LeafProfile) -> CertificatePublicKeyTypes:
    """The public key of a CSR for the certificate ``profile`` describes, or
    :class:`PkiError` if the CSR is not one to sign."""
    try:
        csr = x509.load_pem_x509_csr(pem)
        signed = csr.is_signature_valid
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PkiError("the file is not a PEM certificate signing request the CA can read") from exc
    if not signed:
        raise PkiError(
            "the CSR's signature does not verify: it was not signed with the key it carries"
        )
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _CURVES):
            raise PkiError(f"the CSR's key is on curve {key.curve.name}: use P-256 or P-384")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise PkiError(f"the CSR's RSA key has {key.key_size} bits: use at least 2048")
    else:
        raise PkiError("the CSR's key is neither EC (P-256, P-384) nor RSA")
    for oid, label, expected in (
        (NameOID.COMMON_NAME, "CN", profile.common_name),
        (NameOID.ORGANIZATION_NAME, "O", profile.organization),
    ):
        asked = _attribute(csr.subject, oid)
        if asked is not None and asked != expected:
            raise PkiError(
                f"the CSR asks for {label}={asked!r}, but this certificate is for "
                f"{label}={expected!r}; make a CSR for that subject (`accord certs csr`)"
            )
    return key
