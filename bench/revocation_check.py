"""What a hop pays per call to check the revocation list, and per reload.

Builds a PKI (``certs.init_pki``) in a temporary directory, records
``--revoked`` revoked partner certificates in its registry (entries only:
no keys are made) and publishes the list, then times
``RevocationList.check(cert)`` (a stat and a set lookup: the hot path),
``check_serial`` (without reading the serial from the certificate), parsing
a PEM certificate as a servicer must first, and ``reload()`` of a changed
file (parse and signature check). It measures; it does not assert.

    .venv/bin/python bench/revocation_check.py [--revoked 1000] [--calls 100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import timeit
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from accord.revocation import RevocationList
from certs import init_pki
from certs.ca import _load_ca, _now
from certs.crl import _publish
from certs.files import locked
from certs.lifecycle import _registry
from certs.registry import IssuedCertificate

if TYPE_CHECKING:
    from accord.pki import PkiLayout


def revoke_many(root: Path, count: int) -> PkiLayout:
    layout = init_pki(root, partners={"rcmp": "RCMP"}, adapters=[])
    now = _now()
    with locked(layout):
        ca_cert, ca_key = _load_ca(layout)
        registry = _registry(layout, ca_cert)
        for i in range(count):
            registry.add(
                IssuedCertificate(
                    serial=x509.random_serial_number(),
                    kind="partner",
                    common_name=f"p{i}",
                    organization="Org",
                    not_before=now,
                    not_after=now + dt.timedelta(days=30),
                    fingerprint_sha256="",
                    status="revoked",
                    revoked_at=now,
                    revocation_reason="key_compromise",
                )
            )
        _publish(layout, registry, ca_cert, ca_key)
    return layout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--revoked", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        layout = revoke_many(Path(tmp) / "pki", args.revoked)
        pem = layout.partner("rcmp")[0].read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
        revocations = RevocationList(layout.crl(), layout.ca_cert())
        assert len(revocations.revoked_serials) == args.revoked
        n = args.calls
        per_call = {
            "check(cert)": timeit.timeit(lambda: revocations.check(cert), number=n) / n,
            "check_serial(serial)": timeit.timeit(
                lambda: revocations.check_serial(cert.serial_number), number=n
            )
            / n,
            "load_pem_x509_certificate": timeit.timeit(
                lambda: x509.load_pem_x509_certificate(pem), number=n
            )
            / n,
        }
        for name, seconds in per_call.items():
            print(f"{name:28} {seconds * 1e6:8.2f} µs per call ({args.revoked} revoked)")
        rounds = 50
        stamps = iter(range(rounds))

        def changed_then_checked() -> None:
            stamp = 1_900_000_000_000_000_000 + next(stamps) * 1_000_000_000
            os.utime(layout.crl(), ns=(stamp, stamp))  # a "new" file: read again
            revocations.check(cert)

        seconds = timeit.timeit(changed_then_checked, number=rounds) / rounds
        print(f"{'check after a file change':28} {seconds * 1e3:8.2f} ms ({args.revoked} revoked)")


if __name__ == "__main__":
    main()
