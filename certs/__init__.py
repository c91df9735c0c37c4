"""Federation PKI tooling: the CA, the mTLS certificates of every hop, their
registry and the revocation list."""

from __future__ import annotations

from certs.ca import (
    BROKER_COMMON_NAME,
    CA_COMMON_NAME,
    FEDERATION_ORGANIZATION,
    KINDS,
    LEAF_KINDS,
    OPERATOR_COMMON_NAME,
    CertInfo,
    Kind,
    PkiError,
    PkiLayout,
    certificate_info,
)
from certs.crl import CRL_DAYS, CrlInfo
from certs.csr import make_csr
from certs.lifecycle import (
    LEAF_DAYS,
    REVOCATION_REASONS,
    Issued,
    init_pki,
    issue,
    list_certificates,
    publish_crl,
    renew,
    revoke,
)
from certs.registry import IssuedCertificate, status_now

__all__ = [
    "BROKER_COMMON_NAME",
    "CA_COMMON_NAME",
    "CRL_DAYS",
    "FEDERATION_ORGANIZATION",
    "KINDS",
    "LEAF_DAYS",
    "LEAF_KINDS",
    "OPERATOR_COMMON_NAME",
    "REVOCATION_REASONS",
    "CertInfo",
    "CrlInfo",
    "Issued",
    "IssuedCertificate",
    "Kind",
    "PkiError",
    "PkiLayout",
    "certificate_info",
    "init_pki",
    "issue",
    "list_certificates",
    "make_csr",
    "publish_crl",
    "renew",
    "revoke",
    "status_now",
]
