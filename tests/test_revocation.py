"""accord.revocation: the list every hop checks, reloaded when its file changes.

The CRLs here are built directly with cryptography (not with certs/), so the
checker is tested against lists it had no hand in making.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.errors import (
    CertificateRevoked,
    ConfigError,
    RevocationStale,
    Unauthenticated,
    grpc_status,
)
from accord.revocation import RevocationList

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@dataclass
class Ca:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    path: Path


def make_ca(path: Path, common_name: str = "Accord Federation CA") -> Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - 365 * DAY)
        .not_valid_after(T0 + 3650 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Ca(cert, key, path)


def leaf(ca: Ca, serial: int) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rcmp")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(T0 - DAY)
        .not_valid_after(T0 + 30 * DAY)
        .sign(ca.key, hashes.SHA256())
    )


def build_crl(
    ca: Ca,
    revoked: Iterable[int | tuple[int, x509.ReasonFlags]] = (),
    *,
    number: int | None = 1,
    this_update: dt.datetime = T0,
    next_update: dt.datetime = T0 + 7 * DAY,
    delta: bool = False,
) -> x509.CertificateRevocationList:
    builder = x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
    builder = builder.last_update(this_update).next_update(next_update)
    if number is not None:
        builder = builder.add_extension(x509.CRLNumber(number), critical=False)
    if delta:
        builder = builder.add_extension(x509.DeltaCRLIndicator(1), critical=True)
    for item in revoked:
        serial, reason = item if isinstance(item, tuple) else (item, None)
        entry = x509.RevokedCertificateBuilder().serial_number(serial)
        entry = entry.revocation_date(this_update - dt.timedelta(hours=1))
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(ca.key, hashes.SHA256())


_bumps = iter(range(1, 1_000_000))


def publish(path: Path, data: bytes | x509.CertificateRevocationList) -> None:
    """Replace ``path`` as a publisher should (write aside, rename over), then
    set its mtime explicitly so that the change is seen whatever the clock's
    resolution: the test never waits for time to pass."""
    if isinstance(data, x509.CertificateRevocationList):
        data = data.public_bytes(serialization.Encoding.PEM)
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    stamp = 1_700_000_000_000_000_000 + next(_bumps) * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


class Clock:
    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def ca(tmp_path: Path) -> Ca:
    return make_ca(tmp_path / "ca.pem")


@pytest.fixture
def crl_path(tmp_path: Path) -> Path:
    return tmp_path / "crl.pem"


# --------------------------------------------------------------------------- checking


def test_a_revoked_certificate_is_refused_with_serial_date_and_reason(ca, crl_path):
    publish(crl_path, build_crl(ca, [(0xABC123, x509.ReasonFlags.key_compromise)]))
    revocations = RevocationList(crl_path, ca.path, clock=Clock())
    with pytest.raises(CertificateRevoked) as caught:
        revocations.check(leaf(ca, 0xABC123))
    message = str(caught.value)
    assert "abc123" in message
    assert "2026-03-01 11:00" in message
    assert "key compromise" in message
    assert "ask the federation for a new certificate" in message
    assert str(crl_path.parent) not in message  # no internals
    assert caught.value.serial == 0xABC123
    assert caught.value.revocation_reason == "key_compromise"
    assert isinstance(caught.value, Unauthenticated)
    assert grpc_status(caught.value) == (grpc.StatusCode.UNAUTHENTICATED, message)


def test_a_certificate_not_on_the_list_passes(ca, crl_path):
    publish(crl_path, build_crl(ca, [5, 6]))
    revocations = RevocationList(crl_path, ca.path, clock=Clock())
    revocations.check(leaf(ca, 7))  # no exception
    assert revocations.is_revoked(5) and not revocations.is_revoked(7)
    assert revocations.revoked_serials == {5, 6}
    assert revocations.number == 1
    assert (revocations.this_update, revocations.next_update) == (T0, T0 + 7 * DAY)
    revocation = revocations.revocation(6)
    assert revocation is not None and revocation.reason is None


def test_a_der_list_is_read_too(ca, crl_path):
    publish(crl_path, build_crl(ca, [9]).public_bytes(serialization.Encoding.DER))
    assert RevocationList(crl_path, ca.path, clock=Clock()).is_revoked(9)


def test_unspecified_reason_is_no_reason(ca, crl_path):
    publish(crl_path, build_crl(ca, [(9, x509.ReasonFlags.unspecified)]))
    revocations = RevocationList(crl_path, ca.path, clock=Clock())
    with pytest.raises(CertificateRevoked) as caught:
        revocations.check_serial(9)
    assert caught.value.revocation_reason is None
    assert "(" not in str(caught.value)


# --------------------------------------------------------------------------- staleness


def test_a_stale_list_fails_closed_unless_allowed(ca, crl_path):
    publish(crl_path, build_crl(ca, [5], next_update=T0 + DAY))
    clock = Clock(T0 + DAY)
    revocations = RevocationList(crl_path, ca.path, clock=clock)
    revocations.check(leaf(ca, 7))  # at next_update exactly: still current
    clock.now = T0 + DAY + dt.timedelta(seconds=1)
    assert revocations.is_stale()
    with pytest.raises(RevocationStale) as caught:
        revocations.check(leaf(ca, 7))
    assert "accord certs crl" in str(caught.value)
    assert caught.value.next_update == T0 + DAY
    assert grpc_status(caught.value)[0] == grpc.StatusCode.UNAUTHENTICATED
    revocations.check(leaf(ca, 7), allow_stale=True)
    with pytest.raises(CertificateRevoked):  # the stale list still applies
        revocations.check(leaf(ca, 5), allow_stale=True)
    with pytest.raises(CertificateRevoked):  # revoked is said first
        revocations.check(leaf(ca, 5))


def test_publishing_a_fresh_list_ends_staleness_without_a_restart(ca, crl_path):
    publish(crl_path, build_crl(ca, number=1, next_update=T0 + DAY))
    clock = Clock(T0 + 2 * DAY)
    revocations = RevocationList(crl_path, ca.path, clock=clock)  # starts, stale
    with pytest.raises(RevocationStale):
        revocations.check_serial(7)
    publish(crl_path, build_crl(ca, number=2, this_update=T0 + 2 * DAY, next_update=T0 + 9 * DAY))
    revocations.check_serial(7)
    assert revocations.number == 2


# --------------------------------------------------------------------------- loading


def test_a_missing_unparsable_or_foreign_list_stops_the_start(ca, crl_path, tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        RevocationList(crl_path, ca.path)
    publish(crl_path, b"not a crl")
    with pytest.raises(ConfigError, match=r"not an X\.509 revocation list"):
        RevocationList(crl_path, ca.path)
    rogue = make_ca(tmp_path / "rogue.pem")  # same subject, another key
    publish(crl_path, build_crl(rogue))
    with pytest.raises(ConfigError, match="not signed by the federation CA"):
        RevocationList(crl_path, ca.path)
    publish(crl_path, build_crl(ca, next_update=T0))  # cryptography cannot build one without
    with pytest.raises(ConfigError, match="no next-update"):
        RevocationList(crl_path, ca.path)
    publish(crl_path, build_crl(ca, delta=True))
    with pytest.raises(ConfigError, match="delta"):
        RevocationList(crl_path, ca.path)
    publish(crl_path, build_crl(ca))
    assert RevocationList(crl_path, ca.path).number == 1  # the control


def test_a_list_is_checked_against_the_ca_file_read_with_it(ca, crl_path, tmp_path):
    publish(crl_path, build_crl(ca))
    (tmp_path / "missing-ca.pem").unlink(missing_ok=True)
    with pytest.raises(ConfigError, match="cannot read the federation CA"):
        RevocationList(crl_path, tmp_path / "missing-ca.pem")


# --------------------------------------------------------------------------- reloading


def test_a_changed_file_is_seen_on_the_next_check(ca, crl_path):
    publish(crl_path, build_crl(ca, number=1))
    revocations = RevocationList(crl_path, ca.path, clock=Clock())
    cert = leaf(ca, 42)
    revocations.check(cert)
    publish(crl_path, build_crl(ca, [42], number=2))
    with pytest.raises(CertificateRevoked):
        revocations.check(cert)
    assert revocations.number == 2
    assert revocations.problems == []


def test_a_file_rewritten_in_place_is_seen_once_its_mtime_moves(ca, crl_path):
    publish(crl_path, build_crl(ca, number=1))
    revocations = RevocationList(crl_path, ca.path, clock=Clock())
    inode = crl_path.stat().st_ino
    crl_path.write_bytes(build_crl(ca, [42], number=2).public_bytes(serialization.Encoding.PEM))
    os.utime(crl_path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    assert crl_path.stat().st_ino == inode
    assert revocations.is_revoked(42)


def test_a_bad_new_file_keeps_the_old_list_and_is_reported_once(ca, crl_path, tmp_path):
    publish(crl_path, build_crl(ca, [42], number=1))
    reported: list[str] = []
    revocations = RevocationList(crl_path, ca.path, clock=Clock(), on_problem=reported.append)
    publish(crl_path, b"-----BEGIN X509 CRL-----\ngarbage\n-----END X509 CRL-----\n")
    for _ in range(3):
        with pytest.raises(CertificateRevoked):
            revocations.check_serial(42)
    assert len(revocations.problems) == 1
    assert "not an X.509 revocation list" in revocations.problems[0]
    assert "stays" in revocations.problems[0]
    assert reported == revocations.problems

    rogue = make_ca(tmp_path / "rogue.pem")
    publish(crl_path, build_crl(rogue, [], number=99))  # would un-revoke 42
    assert revocations.is_revoked(42)
    assert len(revocations.problems) == 2
    assert "not signed by the federation CA" in revocations.problems[1]

    publish(crl_path, build_crl(ca, [42, 43], number=2))  # a good one is taken again
    assert revocations.revoked_serials == {42, 43}
    assert len(reported) == 2


def test_an_older_list_is_not_taken_back(ca, crl_path):
    old = build_crl(ca, [], number=1)
    publish(crl_path, build_crl(ca, [42], number=2))
    revocations = RevocationList(crl_path, ca.path, clock=Clock())
    publish(crl_path, old)  # a replay of the list before 42 was revoked
    assert revocations.is_revoked(42)
    assert "not newer than number 2" in revocations.problems[0]
    with pytest.raises(ConfigError, match="not newer"):
        revocations.reload()
    assert len(revocations.problems) == 1  # the same bad file, reported once


def test_a_deleted_file_keeps_the_list_in_force(ca, crl_path):
    publish(crl_path, build_crl(ca, [42]))
    revocations = RevocationList(crl_path, ca.path, clock=Clock())
    crl_path.unlink()
    assert revocations.is_revoked(42)
    assert revocations.is_revoked(42)
    assert len(revocations.problems) == 1
    assert "cannot read" in revocations.problems[0]


def test_reload_says_whether_a_new_list_was_taken(ca, crl_path):
    first = build_crl(ca, number=1)
    publish(crl_path, first)
    revocations = RevocationList(crl_path, ca.path, clock=Clock())
    assert revocations.reload() is False  # nothing changed
    publish(crl_path, first)  # the same list, a new file
    assert revocations.reload() is False
    publish(crl_path, build_crl(ca, [7], number=2))
    assert revocations.reload() is True
    assert revocations.is_revoked(7)
    publish(crl_path, b"junk")
    with pytest.raises(ConfigError, match=r"not an X\.509"):
        revocations.reload()
    assert revocations.is_revoked(7) and revocations.number == 2
    assert len(revocations.problems) == 1
    revocations.check_serial(8)  # the bad file is not reported again
    assert len(revocations.problems) == 1


def test_a_new_ca_may_start_its_numbers_again(ca, crl_path, tmp_path):
    publish(crl_path, build_crl(ca, [42], number=5))
    revocations = RevocationList(crl_path, ca.path, clock=Clock())
    new_ca = make_ca(tmp_path / "new-ca.pem")
    publish(ca.path, new_ca.cert.public_bytes(serialization.Encoding.PEM))
    publish(crl_path, build_crl(new_ca, [], number=1))
    assert not revocations.is_revoked(42)
    assert revocations.number == 1


# --------------------------------------------------------------------------- threads


def test_checks_from_many_threads_see_each_published_list_in_order(ca, crl_path):
    """Versions 1..N of the list revoke serials 1..N: a checker may see any
    version, but never one older than a version it has already seen, and
    after the last publication every checker sees all of it."""
    last = 12
    lists = [build_crl(ca, range(1, n + 1), number=n) for n in range(1, last + 1)]
    publish(crl_path, build_crl(ca, [], number=0))
    revocations = RevocationList(crl_path, ca.path, clock=Clock())
    done = threading.Event()
    failures: list[str] = []

    def seen() -> int:
        revoked = 0
        for serial in range(1, last + 1):
            try:
                revocations.check_serial(serial)
            except CertificateRevoked:
                revoked += 1
        return revoked

    def checker() -> None:
        highest = 0
        while not done.is_set():
            now = seen()
            if now < highest:
                failures.append(f"saw {now} revoked after {highest}")
            highest = max(highest, now)
        if seen() != last:
            failures.append("the last list was not seen")

    threads = [threading.Thread(target=checker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for crl in lists:
        publish(crl_path, crl)
    done.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert revocations.number == last
    assert revocations.problems == []


# --------------------------------------------------------------------------- two ways


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    revoked=st.sets(st.integers(min_value=1, max_value=2**159 - 1), max_size=8),
    probes=st.lists(st.integers(min_value=1, max_value=2**159 - 1), max_size=8),
)
def test_the_checker_agrees_with_the_crl_itself(ca, crl_path, revoked, probes):
    crl = build_crl(ca, revoked)
    publish(crl_path, crl)
    revocations = RevocationList(crl_path, ca.path, clock=Clock())
    for serial in [*revoked, *probes]:
        expected = crl.get_revoked_certificate_by_serial_number(serial) is not None
        assert revocations.is_revoked(serial) is expected


def test_a_list_with_a_malformed_extension_is_refused_not_raised_from_check(ca, crl_path):
    # cryptography parses extensions lazily: a bad one must be met at load,
    # not as a ValueError out of check().
    garbage_reason = x509.UnrecognizedExtension(x509.oid.CRLEntryExtensionOID.CRL_REASON, b"\x01")
    entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(5)
        .revocation_date(T0)
        .add_extension(garbage_reason, critical=False)
        .build()
    )
    bad = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(T0)
        .next_update(T0 + DAY)
        .add_revoked_certificate(entry)
        .sign(ca.key, hashes.SHA256())
    )
    publish(crl_path, bad)
    with pytest.raises(ConfigError, match="revocation list"):
        RevocationList(crl_path, ca.path)
    publish(crl_path, build_crl(ca, [5]))
    revocations = RevocationList(crl_path, ca.path, clock=Clock())
    publish(crl_path, bad)
    with pytest.raises(CertificateRevoked):
        revocations.check_serial(5)
    assert len(revocations.problems) == 1


def test_an_oversized_file_is_refused_unread(ca, crl_path, monkeypatch):
    import accord.revocation

    publish(crl_path, build_crl(ca, [5]))
    monkeypatch.setattr(accord.revocation, "MAX_CRL_BYTES", crl_path.stat().st_size - 1)
    with pytest.raises(ConfigError, match="larger than"):
        RevocationList(crl_path, ca.path)
