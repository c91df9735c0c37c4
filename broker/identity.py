"""Who is calling: the TLS client certificate, mapped through the partner registry.

The caller's identity comes only from the certificate presented in the TLS
handshake (which gRPC has already checked chains to the federation CA); a
role or organization claimed anywhere in a request is never trusted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from accord import tls
from accord.errors import ConfigError, PolicyDenied, Unauthenticated

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from accord.revocation import RevocationList

#: Longest organization (O) an X.509 certificate subject may carry (RFC 5280).
MAX_ORGANIZATION = 64
#: Longest end user: an account name or address, as the partner vouches for it.
MAX_END_USER = 200


@dataclass(frozen=True)
class Partner:
    name: str  # the certificate's common name
    organization: str
    role: str
    jurisdiction: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the partner, its certificate, and the end user."""

    partner: Partner
    fingerprint: str
    serial: int
    not_after: dt.datetime
    end_user: str = ""


class PartnerRegistry:
    def __init__(self, partners: dict[str, Partner]) -> None:
        self.partners = partners

    @classmethod
    def load(cls, path: Path) -> PartnerRegistry:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the partner registry: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("partners"), dict):
            raise ConfigError(f"{path}: expected a mapping 'partners: {{name: ...}}'")
        partners: dict[str, Partner] = {}
        for name, spec in doc["partners"].items():
            if not isinstance(spec, dict):
                raise ConfigError(f"{path}: partner {name!r} must be a mapping")
            missing = [k for k in ("organization", "role", "jurisdiction") if not spec.get(k)]
            if missing:
                raise ConfigError(f"{path}: partner {name!r} lacks {', '.join(missing)}")
            if len(str(spec["organization"])) > MAX_ORGANIZATION:
                raise ConfigError(
                    f"{path}: partner {name!r}: an organization name fits in "
                    f"{MAX_ORGANIZATION} characters (X.509 limit)"
                )
            partners[str(name)] = Partner(
                name=str(name),
                organization=str(spec["organization"]),
                role=str(spec["role"]),
                jurisdiction=str(spec["jurisdiction"]),
                attributes=dict(spec.get("attributes") or {}),
            )
        return cls(partners)

    def authenticate(
        self,
        auth_context: Mapping[str, Iterable[bytes]],
        end_user: str = "",
        now: dt.datetime | None = None,
        revocations: RevocationList | None = None,
    ) -> Principal:
        """Maps the TLS peer to a registered partner, or refuses with the reason.

        With ``revocations``, a revoked certificate is refused, and so is
        every partner while the list is stale (fail closed: the list can no
        longer say who was revoked since; see ``accord.revocation``)."""
        peer = tls.peer_identity(auth_context)
        if peer is None:
            raise Unauthenticated("a client certificate issued by the federation CA is required")
        cert = x509.load_pem_x509_certificate(peer[1])
        now = now or dt.datetime.now(dt.UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise Unauthenticated(
                f"the client certificate is not valid now (valid "
                f"{cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}); "
                "ask the federation for a new one"
            )
        if revocations is not None:
            revocations.check(cert)
        name = tls.name_attribute(cert.subject, NameOID.COMMON_NAME)
        partner = self.partners.get(name)
        if partner is None:
            raise PolicyDenied(
                f"certificate CN={name!r} is not a registered partner", reason="partner"
            )
        organization = tls.name_attribute(cert.subject, NameOID.ORGANIZATION_NAME)
        if organization != partner.organization:
            raise PolicyDenied(
                f"certificate CN={name!r} names organization {organization!r}, "
                f"but the registry says {partner.organization!r}",
                reason="partner",
            )
        return Principal(
            partner=partner,
            fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
            serial=cert.serial_number,
            not_after=cert.not_valid_after_utc,
            end_user=end_user[:MAX_END_USER],
        )
