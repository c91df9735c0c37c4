"""Federation PKI tooling: the CA and the mTLS certificates of every hop."""

from __future__ import annotations

from certs.ca import (
    BROKER_COMMON_NAME,
    CA_COMMON_NAME,
    FEDERATION_ORGANIZATION,
    CertInfo,
    PkiError,
    PkiLayout,
    certificate_info,
    init_pki,
)

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
