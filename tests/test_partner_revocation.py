"""The broker's check of a partner against the revocation list, without gRPC:
a revoked certificate is refused, and every partner is refused while the
list is stale (fail closed), while the federation's own hops are not."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest
from cryptography import x509

from accord.errors import CertificateRevoked, RevocationStale
from accord.revocation import RevocationList
from broker.identity import Partner, PartnerRegistry
from certs.ca import certificate_info
from certs.lifecycle import init_pki, revoke

if TYPE_CHECKING:
    from pathlib import Path

    from accord.pki import PkiLayout

ORGANIZATION = "Royal Canadian Mounted Police"


@pytest.fixture
def pki(tmp_path: Path) -> PkiLayout:
    return init_pki(tmp_path / "pki", partners={"police": ORGANIZATION}, adapters=["BC"])


def registry() -> PartnerRegistry:
    return PartnerRegistry({"police": Partner("police", ORGANIZATION, "police", "CA")})


def peer(pki: PkiLayout) -> dict[str, list[bytes]]:
    """gRPC's auth context for a TLS peer presenting police's certificate."""
    pem = pki.partner("police")[0].read_bytes()
    return {"x509_common_name": [b"police"], "x509_pem_cert": [pem]}


def test_a_current_partner_is_authenticated(pki: PkiLayout) -> None:
    revocations = RevocationList(pki.crl(), pki.ca_cert())
    principal = registry().authenticate(peer(pki), revocations=revocations)
    assert principal.partner.name == "police"


def test_a_revoked_partner_is_refused(pki: PkiLayout) -> None:
    revocations = RevocationList(pki.crl(), pki.ca_cert())
    serial = certificate_info(pki.partner("police")[0].read_bytes()).serial
    revoke(pki, f"0x{serial:x}", "key_compromise")
    with pytest.raises(CertificateRevoked, match="revoked"):
        registry().authenticate(peer(pki), revocations=revocations)


def test_a_stale_list_refuses_every_partner_but_not_the_federations_own_hops(
    pki: PkiLayout,
) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)  # past the 7-day next update
    revocations = RevocationList(pki.crl(), pki.ca_cert(), clock=lambda: later)
    now = later - dt.timedelta(days=1)  # the certificate itself is still valid
    with pytest.raises(RevocationStale, match="out of date"):
        registry().authenticate(peer(pki), now=now, revocations=revocations)
    broker = pki.broker_client()[0].read_bytes()
    revocations.check(x509.load_pem_x509_certificate(broker), allow_stale=True)
