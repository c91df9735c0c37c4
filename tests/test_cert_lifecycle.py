"""The CA's life after init: the registry, the CRL, CSRs, issue, renew, revoke, list,
and the ``accord certs`` commands that run them."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from concurrent import futures
from typing import TYPE_CHECKING

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.errors import CertificateRevoked, PkiError, grpc_status
from accord.revocation import RevocationList
from accord.tls import peer_identity
from app.cli import main
from certs import (
    CRL_DAYS,
    PkiLayout,
    init_pki,
    issue,
    list_certificates,
    make_csr,
    publish_crl,
    renew,
    revoke,
)
from certs.ca import _issue_leaf, _load_ca, _name, _now
from certs.files import _write_cert, _write_key
from certs.registry import IssuedCertificate, Registry
from tests.pki import create_rogue_ca_client

if TYPE_CHECKING:
    from pathlib import Path

PARTNERS = {"rcmp": "Royal Canadian Mounted Police"}


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def load_crl(layout: PkiLayout) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(layout.crl().read_bytes())


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def signed_by_the_ca(crl: x509.CertificateRevocationList, layout: PkiLayout) -> bool:
    return crl.is_signature_valid(_load_ca(layout)[1].public_key())


def fingerprint(path: Path) -> str:
    return load(path).fingerprint(hashes.SHA256()).hex()


def by_serial(layout: PkiLayout):
    return {c.serial: c for c in list_certificates(layout)}


_bumps = iter(range(1, 1_000_000))


def bump_mtime(path: Path) -> None:
    """A new, later mtime: a change is seen whatever the clock's resolution."""
    stamp = 1_800_000_000_000_000_000 + next(_bumps) * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


@pytest.fixture
def layout(tmp_path) -> PkiLayout:
    return init_pki(tmp_path / "pki", partners=PARTNERS, adapters=["CA-CSC"])


# --------------------------------------------------------------------------- init: registry and CRL


def test_layout_names_the_new_files(tmp_path):
    layout = PkiLayout(tmp_path)
    assert layout.crl() == tmp_path / "crl.pem"
    assert layout.registry() == tmp_path / "index.json"
    assert layout.operator() == (tmp_path / "operator.pem", tmp_path / "operator.key")


def test_init_records_every_certificate_it_issues(layout):
    recorded: dict[tuple[str, str], IssuedCertificate] = {
        (c.kind, c.common_name): c for c in list_certificates(layout)
    }
    files = {
        ("ca", "Accord Federation CA"): layout.ca_cert(),
        ("broker-server", "accord-broker"): layout.broker_server()[0],
        ("broker-client", "accord-broker"): layout.broker_client()[0],
        ("operator", "accord-operator"): layout.operator()[0],
        ("adapter", "adapter-ca-csc"): layout.adapter("CA-CSC")[0],
        ("partner", "rcmp"): layout.partner("rcmp")[0],
    }
    assert set(recorded) == set(files)
    for key, path in files.items():
        entry, cert = recorded[key], load(path)
        assert entry.fingerprint_sha256 == fingerprint(path)
        assert entry.serial == cert.serial_number
        assert entry.serial_hex == f"{cert.serial_number:x}"
        assert (entry.not_before, entry.not_after) == (
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
        )
        assert entry.status == "valid" and entry.key_held_by_ca
    assert recorded[("partner", "rcmp")].organization == "Royal Canadian Mounted Police"
    raw = json.loads(layout.registry().read_text())
    for record in raw["certificates"]:
        assert int(record["serial"]) == int(record["serial_hex"], 16)  # both spellings agree


def test_init_publishes_an_empty_crl_signed_by_the_ca(layout):
    crl = load_crl(layout)
    ca = load(layout.ca_cert())
    assert signed_by_the_ca(crl, layout)
    assert crl.issuer == ca.subject
    assert list(crl) == []
    assert crl_number(crl) == 1
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(days=CRL_DAYS)
    assert abs(crl.last_update_utc - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert RevocationList(layout.crl(), layout.ca_cert()).number == 1


def test_rerunning_init_changes_neither_the_registry_nor_the_crl(layout):
    registry, crl = layout.registry().read_bytes(), layout.crl().read_bytes()
    init_pki(layout.directory, partners=PARTNERS, adapters=["CA-CSC"])
    assert layout.registry().read_bytes() == registry
    assert layout.crl().read_bytes() == crl


def test_init_republishes_a_foreign_or_stale_crl(layout, tmp_path):
    rogue_ca, _, _ = create_rogue_ca_client(tmp_path / "rogue", "rcmp", "RCMP")
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    foreign = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(load(rogue_ca).subject)
        .last_update(_now())
        .next_update(_now() + dt.timedelta(days=7))
        .add_extension(x509.CRLNumber(50), critical=False)
        .sign(rogue_key, hashes.SHA256())
    )
    layout.crl().write_bytes(foreign.public_bytes(serialization.Encoding.PEM))
    init_pki(layout.directory, partners=PARTNERS, adapters=["CA-CSC"])
    crl = load_crl(layout)
    assert signed_by_the_ca(crl, layout)
    assert crl_number(crl) == 2  # the registry remembers number 1

    ca_cert, ca_key = _load_ca(layout)
    stale = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(_now() - dt.timedelta(days=10))
        .next_update(_now() - dt.timedelta(days=3))
        .add_extension(x509.CRLNumber(7), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    layout.crl().write_bytes(stale.public_bytes(serialization.Encoding.PEM))
    init_pki(layout.directory, partners=PARTNERS, adapters=["CA-CSC"])
    crl = load_crl(layout)
    assert crl_number(crl) == 8  # past the stale list's own number
    assert crl.next_update_utc is not None and crl.next_update_utc > _now()


def test_init_restores_a_revocation_the_crl_lacks(layout):
    serial = load(layout.partner("rcmp")[0]).serial_number
    revoke(layout, f"{serial:x}")
    publish_crl(layout)
    registry = Registry.load(layout.registry(), fingerprint(layout.ca_cert()))
    ca_cert, ca_key = _load_ca(layout)
    # As if a revoke stopped between saving the registry and writing the list:
    # a list from this CA, current, without the revoked serial.
    unlisted = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(_now())
        .next_update(_now() + dt.timedelta(days=7))
        .add_extension(x509.CRLNumber(registry.crl_number), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    layout.crl().write_bytes(unlisted.public_bytes(serialization.Encoding.PEM))
    init_pki(layout.directory, partners={}, adapters=[])
    assert load_crl(layout).get_revoked_certificate_by_serial_number(serial) is not None


def test_init_adopts_the_certificates_of_a_pki_from_before_the_registry(layout):
    before = {p: p.read_bytes() for p in layout.directory.glob("*.pem") if p != layout.crl()}
    layout.registry().unlink()
    layout.crl().unlink()
    init_pki(layout.directory, partners=PARTNERS, adapters=["CA-CSC"])
    assert {p: p.read_bytes() for p in before} == before  # nothing reissued
    recorded = {c.fingerprint_sha256 for c in list_certificates(layout)}
    assert recorded == {fingerprint(p) for p in before}
    assert crl_number(load_crl(layout)) == 1


def test_init_reissues_an_adapter_certificate_without_its_own_name(layout):
    cert_path, key_path = layout.adapter("CA-CSC")
    ca_cert, ca_key = _load_ca(layout)
    old, key = _issue_leaf(  # the loopback names only, as before adapter-<code>
        ca_cert,
        ca_key,
        _name("adapter-ca-csc", "Accord Federation"),
        server=True,
        not_before=_now() - dt.timedelta(minutes=5),
        not_after=_now() + dt.timedelta(days=30),
    )
    _write_key(key_path, key)
    _write_cert(cert_path, old)
    init_pki(layout.directory, partners=PARTNERS, adapters=["CA-CSC"])
    new = load(cert_path)
    assert new.serial_number != old.serial_number
    names = new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "adapter-ca-csc" in names.get_values_for_type(x509.DNSName)


def test_init_reissues_a_revoked_leaf_it_holds_the_key_of(layout):
    before = load(layout.partner("rcmp")[0]).serial_number
    revoke(layout, "rcmp")
    init_pki(layout.directory, partners=PARTNERS, adapters=["CA-CSC"])
    after = load(layout.partner("rcmp")[0]).serial_number
    assert after != before
    assert by_serial(layout)[after].status == "valid"
    assert by_serial(layout)[before].status == "revoked"


def test_force_starts_a_new_registry_and_keeps_the_old_one(layout):
    old_ca = fingerprint(layout.ca_cert())
    init_pki(layout.directory, partners=PARTNERS, adapters=["CA-CSC"], force=True)
    kept = layout.directory / f"index-{old_ca[:16]}.json"
    assert json.loads(kept.read_text())["ca_fingerprint_sha256"] == old_ca
    raw = json.loads(layout.registry().read_text())
    assert raw["ca_fingerprint_sha256"] == fingerprint(layout.ca_cert()) != old_ca
    assert len(raw["certificates"]) == 6
    assert signed_by_the_ca(load_crl(layout), layout)


def test_a_damaged_registry_is_an_error_not_a_fresh_start(layout):
    layout.registry().write_text('{"format": 1, "ca_fingerprint_sha256": ')
    with pytest.raises(PkiError, match="cannot read the certificate registry"):
        list_certificates(layout)
    layout.registry().write_text(json.dumps({"format": 1}))
    with pytest.raises(PkiError, match="damaged"):
        issue(layout, "partner", "rcmp")


# --------------------------------------------------------------------------- issue and renew


def test_issue_renew_revoke_list_round_trip(layout):
    first = issue(layout, "partner", "bc-corrections", organization="BC Corrections")
    assert first.key_path == layout.partner("bc-corrections")[1]
    assert by_serial(layout)[first.certificate.serial].status == "valid"

    old_key = load(first.cert_path).public_key()
    second = renew(layout, "partner", "bc-corrections")
    new = load(second.cert_path)
    assert new.subject == _name("bc-corrections", "BC Corrections")
    assert new.public_key() != old_key
    new.verify_directly_issued_by(load(layout.ca_cert()))
    statuses = by_serial(layout)
    assert statuses[first.certificate.serial].status == "superseded"  # not revoked
    assert statuses[second.certificate.serial].status == "valid"
    assert (
        first.certificate.serial
        not in RevocationList(layout.crl(), layout.ca_cert()).revoked_serials
    )

    revoked, info = revoke(layout, "bc-corrections", "affiliation_changed")
    assert {r.serial for r in revoked} == {first.certificate.serial, second.certificate.serial}
    assert info.revoked == 2 and info.number == 2
    statuses = by_serial(layout)
    for serial in (first.certificate.serial, second.certificate.serial):
        assert statuses[serial].status == "revoked"
        assert statuses[serial].revocation_reason == "affiliation_changed"
        assert statuses[serial].revoked_at is not None
    crl = load_crl(layout)
    entry = crl.get_revoked_certificate_by_serial_number(second.certificate.serial)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.affiliation_changed
    assert statuses[load(layout.partner("rcmp")[0]).serial_number].status == "valid"


def test_issue_takes_a_partner_organization_from_its_last_certificate(layout):
    again = issue(layout, "partner", "rcmp")
    assert again.certificate.organization == "Royal Canadian Mounted Police"
    with pytest.raises(PkiError, match="needs its organization"):
        issue(layout, "partner", "newcomer")


def test_issue_of_the_fixed_kinds(layout):
    operator = issue(layout, "operator")
    cert = load(operator.cert_path)
    assert operator.cert_path == layout.operator()[0]
    assert cert.subject == _name("accord-operator", "Accord Federation")
    with pytest.raises(PkiError, match="always issued to accord-broker"):
        issue(layout, "broker-server", "someone-else")
    adapter = load(issue(layout, "adapter", "BC").cert_path)
    names = adapter.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "adapter-bc"]
    with pytest.raises(PkiError, match="unknown certificate kind"):
        issue(layout, "wizard", "x")
    with pytest.raises(PkiError, match="created by `accord certs init`"):
        issue(layout, "ca")
    with pytest.raises(PkiError, match="at least 1"):
        issue(layout, "operator", days=0)


def test_renew_needs_something_to_renew(layout):
    with pytest.raises(PkiError, match="no partner certificate"):
        renew(layout, "partner", "nobody")
    with pytest.raises(PkiError, match="no adapter certificate"):
        renew(layout, "adapter", "QC")


@pytest.mark.parametrize(
    ("name", "organization"),
    [
        ("accord-broker", "Some Org"),
        ("Accord-Operator", "Some Org"),
        ("adapter-bc", "Some Org"),
        ("ADAPTER-x", "Some Org"),
        ("fine-name", "Accord Federation"),
        ("fine-name", "  accord   FEDERATION "),
    ],
)
def test_reserved_names_are_refused_for_partners(layout, tmp_path, name, organization):
    with pytest.raises(PkiError, match="reserved"):
        issue(layout, "partner", name, organization=organization)
    with pytest.raises(PkiError, match="reserved"):
        init_pki(layout.directory, partners={name: organization}, adapters=[])
    with pytest.raises(PkiError, match="reserved"):
        make_csr(name, organization, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- CSRs


def test_csr_signing_keeps_the_key_off_the_ca(layout, tmp_path):
    key_path, csr_path = make_csr("ext", "External Org", tmp_path / "partner-side")
    assert (key_path.stat().st_mode & 0o777) == 0o600
    partner_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)

    issued = issue(
        layout, "partner", "ext", organization="External Org", csr_pem=csr_path.read_bytes()
    )
    assert issued.key_path is None
    assert not layout.partner("ext")[1].exists()
    cert = load(issued.cert_path)
    assert cert.public_key() == partner_key.public_key()
    cert.verify_directly_issued_by(load(layout.ca_cert()))
    assert cert.subject == _name("ext", "External Org")
    assert by_serial(layout)[cert.serial_number].key_held_by_ca is False
    secret = partner_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pem_body = key_path.read_bytes().splitlines()[1]
    for path in layout.directory.iterdir():
        assert pem_body not in path.read_bytes() and secret not in path.read_bytes(), path

    # init keeps it (no key made for the partner), and renewal wants a new CSR.
    init_pki(layout.directory, partners={**PARTNERS, "ext": "External Org"}, adapters=[])
    assert load(layout.partner("ext")[0]) == cert
    assert not layout.partner("ext")[1].exists()
    with pytest.raises(PkiError, match="from a new CSR"):
        renew(layout, "partner", "ext")
    _, second_csr = make_csr("ext", "External Org", tmp_path / "rotation")
    renewed = renew(layout, "partner", "ext", csr_pem=second_csr.read_bytes())
    assert renewed.key_path is None
    assert by_serial(layout)[cert.serial_number].status == "superseded"


def test_a_csr_replacing_a_ca_made_pair_removes_the_stale_key(layout, tmp_path):
    _, csr = make_csr("rcmp", "Royal Canadian Mounted Police", tmp_path / "p")
    issue(layout, "partner", "rcmp", csr_pem=csr.read_bytes())
    assert not layout.partner("rcmp")[1].exists()


def _csr(key, subject: x509.Name, *extensions: x509.ExtensionType) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def test_only_the_public_key_of_a_csr_is_used(layout):
    key = ec.generate_private_key(ec.SECP256R1())
    greedy = _csr(
        key,
        x509.Name([]),  # no subject: the arguments give it
        x509.BasicConstraints(ca=True, path_length=None),
        x509.SubjectAlternativeName([x509.DNSName("accord-broker")]),
    )
    cert = load(issue(layout, "partner", "ext", organization="Ext", csr_pem=greedy).cert_path)
    assert cert.subject == _name("ext", "Ext")
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_csrs_the_ca_will_not_sign(layout):
    def named(cn: str, org: str = "Ext") -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )

    p256 = ec.generate_private_key(ec.SECP256R1())
    good = _csr(p256, named("ext"))
    der = bytearray(x509.load_pem_x509_csr(good).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the signature's last byte: the CSR still parses
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    cases = {
        b"not a csr": "not a PEM certificate signing request",
        tampered: "signature does not verify",
        _csr(p256, named("someone-else")): "asks for CN='someone-else'",
        _csr(p256, named("ext", "Other Org")): "asks for O='Other Org'",
        _csr(rsa.generate_private_key(65537, 1024), named("ext")): "at least 2048",
        _csr(ec.generate_private_key(ec.SECP256K1()), named("ext")): "curve secp256k1",
        _csr(ed25519.Ed25519PrivateKey.generate(), named("ext")): "neither EC",
    }
    for pem, problem in cases.items():
        with pytest.raises(PkiError, match=problem):
            issue(layout, "partner", "ext", organization="Ext", csr_pem=pem)
    assert "ext" not in {c.common_name for c in list_certificates(layout)}
    issue(layout, "partner", "ext", organization="Ext", csr_pem=good)  # the control


def test_make_csr_never_overwrites_a_key(tmp_path):
    key_path, _ = make_csr("ext", "Ext", tmp_path)
    before = key_path.read_bytes()
    with pytest.raises(PkiError, match="never overwritten"):
        make_csr("ext", "Ext", tmp_path)
    assert key_path.read_bytes() == before


# --------------------------------------------------------------------------- revoke and the CRL


def test_revoke_by_serial_in_every_spelling(layout):
    for spelling in ("{:x}", "0x{:X}", "{:d}"):
        serial = issue(layout, "partner", "rcmp").certificate.serial
        (revoked,), _ = revoke(layout, spelling.format(serial))
        assert revoked.serial == serial
    assert len(load_crl(layout)) == 3


def test_revoke_refusals(layout):
    ca_serial = load(layout.ca_cert()).serial_number
    with pytest.raises(PkiError, match="cannot revoke itself"):
        revoke(layout, f"{ca_serial:x}")
    with pytest.raises(PkiError, match="no certificate with serial or name"):
        revoke(layout, "nobody")
    serial = load(layout.partner("rcmp")[0]).serial_number
    revoke(layout, f"{serial:x}", "key_compromise")
    with pytest.raises(PkiError, match="already revoked"):
        revoke(layout, f"{serial:x}")
    with pytest.raises(PkiError, match="still usable"):
        revoke(layout, "rcmp")  # nothing of it left to revoke
    with pytest.raises(PkiError, match="unknown reason"):
        revoke(layout, "accord-operator", "certificate_hold")
    with pytest.raises(PkiError, match="at least 1 day"):
        revoke(layout, "accord-operator", crl_days=0)


def test_revoke_by_name_and_kind(layout):
    revoked, _ = revoke(layout, "accord-broker", kind="broker-client")
    assert [r.kind for r in revoked] == ["broker-client"]
    assert load(layout.broker_server()[0]).serial_number not in {
        e.serial_number for e in load_crl(layout)
    }


def test_a_revocation_is_refused_by_a_running_list_on_its_next_check(layout):
    revocations = RevocationList(layout.crl(), layout.ca_cert())
    cert = load(layout.partner("rcmp")[0])
    revocations.check(cert)  # the same object, before and after
    revoke(layout, "rcmp", "key_compromise")
    bump_mtime(layout.crl())
    with pytest.raises(CertificateRevoked, match="key compromise"):
        revocations.check(cert)


def test_the_crl_number_grows_even_when_the_file_is_lost(layout):
    numbers = [publish_crl(layout).number, publish_crl(layout, days=1).number]
    layout.crl().unlink()
    numbers.append(publish_crl(layout).number)
    assert numbers == [2, 3, 4]
    assert crl_number(load_crl(layout)) == 4
    crl = load_crl(layout)
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(days=CRL_DAYS)
    with pytest.raises(PkiError, match="at least 1 day"):
        publish_crl(layout, days=0)


def test_an_expired_revoked_certificate_leaves_the_crl(layout):
    serial = load(layout.partner("rcmp")[0]).serial_number
    revoke(layout, "rcmp")
    raw = json.loads(layout.registry().read_text())
    for record in raw["certificates"]:
        if int(record["serial"]) == serial:
            record["not_after"] = "2020-01-01T00:00:00Z"
    layout.registry().write_text(json.dumps(raw))
    info = publish_crl(layout)
    assert info.revoked == 0
    assert load_crl(layout).get_revoked_certificate_by_serial_number(serial) is None


def test_concurrent_operations_lose_no_record(layout):
    names = [f"partner-{i}" for i in range(8)]
    errors: list[BaseException] = []

    def one(name: str) -> None:
        try:
            issue(layout, "partner", name, organization="Org")
            revoke(layout, name)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    revoked = {c.common_name for c in list_certificates(layout) if c.status == "revoked"}
    assert revoked == set(names)
    assert len(load_crl(layout)) == len(names)
    assert crl_number(load_crl(layout)) == 1 + len(names)


_operations = st.lists(
    st.tuples(st.sampled_from(["issue", "renew", "revoke"]), st.sampled_from(["a", "b", "c"])),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=_operations)
def test_registry_crl_and_checker_agree_on_what_is_revoked(tmp_path_factory, operations):
    layout = init_pki(tmp_path_factory.mktemp("pki"), partners={}, adapters=[])
    revocations = RevocationList(layout.crl(), layout.ca_cert())
    for operation, name in operations:
        try:
            if operation == "issue":
                issue(layout, "partner", name, organization="Org")
            elif operation == "renew":
                renew(layout, "partner", name)
            else:
                revoke(layout, name)
        except PkiError:
            continue  # renewing or revoking what is not there
        bump_mtime(layout.crl())
    in_registry = {c.serial for c in list_certificates(layout) if c.status == "revoked"}
    in_crl = {e.serial_number for e in load_crl(layout)}
    assert in_registry == in_crl == revocations.revoked_serials


# --------------------------------------------------------------------------- the command line


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_issue_list_revoke_crl(layout, capsys, tmp_path):
    pki = ["--dir", str(layout.directory)]
    code, out, _ = run(
        capsys, "certs", "issue", "--kind", "partner", "--name", "late", "--org", "Late Org", *pki
    )
    assert code == 0 and "issued partner certificate for late (O Late Org)" in out
    serial = f"{load(layout.partner('late')[0]).serial_number:x}"
    assert serial in out

    code, out, _ = run(capsys, "certs", "renew", "--kind", "partner", "--name", "late", *pki)
    assert code == 0 and "issued partner certificate for late" in out

    code, out, _ = run(capsys, "certs", "list", *pki)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["serial", "kind", "CN", "O", "not_after", "status"]
    late = [r.split() for r in rows if " late " in r]
    assert [r[-1] for r in late] == ["superseded", "valid"]
    assert late[0][0] == serial

    code, out, _ = run(capsys, "certs", "revoke", serial, "--reason", "key_compromise", *pki)
    assert code == 0 and f"revoked partner late serial {serial} (key_compromise)" in out
    assert "CRL number 2" in out and "1 revoked serial;" in out

    code, out, _ = run(capsys, "certs", "crl", "--days", "3", *pki)
    assert code == 0 and "CRL number 3" in out and "1 revoked serial;" in out
    crl = load_crl(layout)
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(days=3)


def test_cli_csr_and_signing_it(layout, capsys, tmp_path):
    out_dir = tmp_path / "partner-side"
    code, out, _ = run(
        capsys, "certs", "csr", "--name", "ext", "--org", "Ext Org", "--out", str(out_dir)
    )
    assert code == 0 and "never send it" in out
    csr = out_dir / "ext.csr"
    code, out, _ = run(
        capsys,
        "certs",
        "issue",
        "--kind",
        "partner",
        "--name",
        "ext",
        "--csr",
        str(csr),
        "--org",
        "Ext Org",
        "--dir",
        str(layout.directory),
    )
    assert code == 0 and "its holder keeps the private key" in out
    assert not layout.partner("ext")[1].exists()


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["certs", "revoke", "nobody"], "no certificate with serial or name 'nobody'"),
        (
            ["certs", "issue", "--kind", "partner", "--name", "accord-broker", "--org", "X"],
            "reserved",
        ),
        (
            [
                "certs",
                "issue",
                "--kind",
                "partner",
                "--name",
                "x",
                "--org",
                "X",
                "--csr",
                "/nonexistent.csr",
            ],
            "cannot read the CSR",
        ),
        (["certs", "crl", "--days", "0"], "at least 1 day"),
        (["certs", "renew", "--kind", "adapter", "--name", "QC"], "no adapter certificate"),
    ],
)
def test_cli_refusals_exit_2_with_a_sentence(layout, capsys, argv, problem):
    code, out, err = run(capsys, *argv, "--dir", str(layout.directory))
    assert code == 2
    assert out == ""
    assert err.startswith("accord: ") and problem in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_without_a_pki(capsys, tmp_path):
    code, _, err = run(capsys, "certs", "list", "--dir", str(tmp_path / "none"))
    assert code == 2 and "run `accord certs init`" in err
    code, _, err = run(capsys, "certs", "revoke", "x", "--dir", str(tmp_path / "none"))
    assert code == 2 and "run `accord certs init`" in err


def test_cli_os_errors_are_a_sentence(capsys, tmp_path, monkeypatch):
    import certs

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.key"))

    monkeypatch.setattr(certs, "make_csr", denied)
    code, _, err = run(capsys, "certs", "csr", "--name", "x", "--org", "X", "--out", str(tmp_path))
    assert code == 2
    assert err.strip() == f"accord: {tmp_path / 'x.key'}: Permission denied"


# --------------------------------------------------------------------------- over real mTLS


class _Server:
    """A gRPC server over mTLS whose one method checks the caller against a
    RevocationList, as a hop does: the certificate from the TLS session,
    every call."""

    def __init__(self, layout: PkiLayout, pair: tuple[Path, Path]) -> None:
        cert, key = pair
        self.revocations = RevocationList(layout.crl(), layout.ca_cert())

        def whoami(request: bytes, context: grpc.ServicerContext) -> bytes:
            identity = peer_identity(context.auth_context())
            assert identity is not None
            try:
                self.revocations.check(x509.load_pem_x509_certificate(identity[1]))
            except CertificateRevoked as exc:
                context.abort(*grpc_status(exc))
            return identity[0].encode()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.method_handlers_generic_handler(
            "test.Echo", {"WhoAmI": grpc.unary_unary_rpc_method_handler(whoami)}
        )
        self.server.add_generic_rpc_handlers((handler,))
        credentials = grpc.ssl_server_credentials(
            [(key.read_bytes(), cert.read_bytes())],
            root_certificates=layout.ca_cert().read_bytes(),
            require_client_auth=True,
        )
        self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
        self.server.start()

    def stop(self) -> None:
        self.server.stop(None).wait()


def _channel(layout: PkiLayout, pair: tuple[Path, Path], port: int, name: str):
    cert, key = pair
    credentials = grpc.ssl_channel_credentials(
        root_certificates=layout.ca_cert().read_bytes(),
        private_key=key.read_bytes(),
        certificate_chain=cert.read_bytes(),
    )
    # The name the server's certificate must carry (as the broker pins each source).
    options = [("grpc.ssl_target_name_override", name)]
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=options)


def test_a_revoked_partner_is_refused_on_its_open_channel(layout):
    server = _Server(layout, layout.broker_server())
    try:
        with _channel(layout, layout.partner("rcmp"), server.port, "localhost") as channel:
            who = channel.unary_unary("/test.Echo/WhoAmI")
            assert who(b"", timeout=10) == b"rcmp"
            revoke(layout, "rcmp", "key_compromise")
            bump_mtime(layout.crl())
            with pytest.raises(grpc.RpcError) as caught:
                who(b"", timeout=10)  # the same channel, the same TLS session
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        details = caught.value.details() or ""
        assert "was revoked" in details and "key compromise" in details
        assert str(layout.directory) not in details
        with _channel(layout, layout.operator(), server.port, "localhost") as channel:
            assert channel.unary_unary("/test.Echo/WhoAmI")(b"", timeout=10) == b"accord-operator"
    finally:
        server.stop()


def test_a_channel_pinned_to_an_adapter_accepts_only_that_adapter(tmp_path):
    layout = init_pki(tmp_path / "pki", partners={}, adapters=["BC", "CA-CSC"])
    server = _Server(layout, layout.adapter("BC"))
    try:
        client = layout.broker_client()
        with _channel(layout, client, server.port, "adapter-bc") as channel:
            assert channel.unary_unary("/test.Echo/WhoAmI")(b"", timeout=10) == b"accord-broker"
        with (
            _channel(layout, client, server.port, "adapter-ca-csc") as channel,
            pytest.raises(grpc.RpcError) as caught,
        ):
            channel.unary_unary("/test.Echo/WhoAmI")(b"", timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # the name does not match
    finally:
        server.stop()


@pytest.mark.parametrize(
    "argv",
    [
        ["--workdir", "X", "certs", "list"],
        ["certs", "--workdir", "X", "list"],
        ["certs", "list", "--workdir", "X"],
    ],
)
def test_the_work_dir_is_taken_wherever_it_is_given(argv):
    from pathlib import Path

    from app.cli import build_parser

    # Before the fix, a subcommand's own default replaced a --workdir given
    # before its name: `accord --workdir X certs revoke ...` acted on ./.accord.
    assert build_parser().parse_args(argv).workdir == Path("X")
    assert build_parser().parse_args(["certs", "list"]).workdir == Path(".accord")
