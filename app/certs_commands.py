"""``accord certs issue|renew|revoke|crl|list|csr``: the CA's life after ``init``.

Each prints what it did in a sentence or a table; a refusal is a
:class:`~accord.errors.PkiError`, which the command line prints and exits 2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from accord.errors import PkiError
from app.render import render_table

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from accord.pki import PkiLayout
    from accord.workdir import Workdir
    from certs import CrlInfo, Issued


def run(args: argparse.Namespace, workdir: Workdir) -> int:
    try:
        return _run(args, workdir)
    except OSError as exc:  # a directory not writable, a disk full: a sentence, not a stack
        where = f"{exc.filename}: " if exc.filename else ""
        raise PkiError(f"{where}{exc.strerror or exc}") from exc


def _run(args: argparse.Namespace, workdir: Workdir) -> int:
    import certs

    if args.certs_command == "csr":
        key_path, csr_path = certs.make_csr(args.name, args.org, args.out)
        print(f"private key {key_path} (keep it; never send it)")
        print(f"CSR {csr_path}: send it to the federation, which signs it with")
        print(f"  accord certs issue --kind partner --name {args.name} --csr {csr_path.name}")
        return 0
    layout = certs.PkiLayout(args.dir) if args.dir else workdir.pki
    if args.certs_command == "list":
        return _list(layout)
    if args.certs_command == "crl":
        _print_crl(layout, certs.publish_crl(layout, args.days))
        return 0
    if args.certs_command == "revoke":
        revoked, info = certs.revoke(
            layout, args.target, args.reason, kind=args.kind, crl_days=args.crl_days
        )
        for entry in revoked:
            print(
                f"revoked {entry.kind} {entry.common_name} serial {entry.serial_hex} "
                f"({entry.revocation_reason})"
            )
        _print_crl(layout, info)
        return 0
    csr_pem = _read_csr(args.csr) if args.csr else None
    if args.certs_command == "issue":
        issued = certs.issue(
            layout, args.kind, args.name, organization=args.org, csr_pem=csr_pem, days=args.days
        )
    else:
        issued = certs.renew(layout, args.kind, args.name, csr_pem=csr_pem, days=args.days)
    _print_issued(issued)
    return 0


def _read_csr(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PkiError(f"cannot read the CSR {path}: {exc.strerror}") from exc


def _print_issued(issued: Issued) -> None:
    entry = issued.certificate
    organization = f" (O {entry.organization})" if entry.organization else ""
    print(
        f"issued {entry.kind} certificate for {entry.common_name}{organization}: serial "
        f"{entry.serial_hex}, valid until {entry.not_after:%Y-%m-%d %H:%M} UTC"
    )
    print(f"certificate {issued.cert_path}")
    if issued.key_path is not None:
        print(f"private key {issued.key_path}")
    else:
        print("signed from a CSR: its holder keeps the private key; send it the certificate")


def _print_crl(layout: PkiLayout, info: CrlInfo) -> None:
    print(
        f"CRL number {info.number} published in {layout.crl()}: {info.revoked} revoked "
        f"serial{'s' if info.revoked != 1 else ''}; this update "
        f"{info.this_update:%Y-%m-%d %H:%M} UTC, next update {info.next_update:%Y-%m-%d %H:%M} "
        "UTC (publish again before then: partners are refused after it)"
    )


def _list(layout: PkiLayout) -> int:
    import datetime as dt

    import certs

    now = dt.datetime.now(dt.UTC)
    rows = [
        [
            entry.serial_hex,
            entry.kind,
            entry.common_name,
            entry.organization or "",
            f"{entry.not_after:%Y-%m-%d}",
            certs.status_now(entry, now),
        ]
        for entry in certs.list_certificates(layout)
    ]
    print(render_table(["serial", "kind", "CN", "O", "not_after", "status"], rows))
    return 0
