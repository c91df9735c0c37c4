"""SIGHUP reloads the broker's policy and certificate, all or nothing, and
each attempt is an audit record.

A federation of its own (the shared one must not see its policy change),
started from a copy of policies/ that the tests edit. Each test starts with
the shipped policy in force (see ``federation``), whatever the test before
it changed, so the tests pass alone and in any order.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509

from accord.audit.keys import load_public_key
from accord.audit.verify import verify
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import write_federation_data
from app.commands import init_certs
from app.launcher import LocalFederation
from broker.reload import policy_digest
from tests.integration.conftest import SCALE, SEED

pytestmark = pytest.mark.integration

COUNT = "SELECT count(*) AS n FROM offenders"


POLICE_ENTRY = (
    "  police:\n    organization: RCMP E Division\n    role: police\n    jurisdiction: BC\n"
)


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    root = tmp_path_factory.mktemp("reload")
    policies = root / "policies"
    shutil.copytree(DEFAULT_POLICIES, policies)
    workdir = Workdir(root / "work")
    init_certs(workdir, DEFAULT_FEDERATION, policies)
    write_federation_data(load_federation(DEFAULT_FEDERATION), workdir.path, seed=SEED, scale=SCALE)
    with LocalFederation(workdir, DEFAULT_FEDERATION, policies) as launcher:
        yield launcher, workdir, policies


@pytest.fixture
def federation(started):
    """The module's federation, its policy files and the policy in force back
    to the shipped ones: a test before may have revoked a partner or left a
    file broken."""
    launcher, workdir, policies = started
    shutil.copytree(DEFAULT_POLICIES, policies, dirs_exist_ok=True)
    shipped = policy_digest(DEFAULT_POLICIES)
    assert policy_digest(policies) == shipped
    if policy_in_force(workdir) != shipped:
        policy, _ = sighup_and_wait(launcher, workdir)
        assert policy["outcome"] == "OK" and policy["policy_sha256"] == shipped
    return started


def audit_events(workdir: Workdir, event: str) -> list[dict[str, Any]]:
    return [
        record
        for path in sorted(workdir.audit_dir().glob("audit-*.jsonl"))
        for line in path.read_text().splitlines()
        if (record := json.loads(line)).get("event") == event
    ]


def sighup_and_wait(
    launcher: LocalFederation, workdir: Workdir
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sends SIGHUP; returns the new policy and certificate reload records."""
    before = len(audit_events(workdir, "certificate_reload"))
    launcher.processes["broker"].send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while len(audit_events(workdir, "certificate_reload")) == before:
        assert time.monotonic() < deadline, "the broker did not record its reload"
        time.sleep(0.05)
    return (
        audit_events(workdir, "policy_reload")[-1],
        audit_events(workdir, "certificate_reload")[-1],
    )


def policy_in_force(workdir: Workdir) -> str:
    """The digest of the policy the broker runs: the last one it loaded."""
    loaded = [
        record
        for record in audit_events(workdir, "start") + audit_events(workdir, "policy_reload")
        if record.get("policy_sha256") and record.get("outcome", "OK") == "OK"
    ]
    digest: str = max(loaded, key=lambda record: record["seq"])["policy_sha256"]
    return digest


def revoke_police(policies: Path) -> None:
    partners = policies / "partners.yaml"
    text = partners.read_text()
    assert POLICE_ENTRY in text
    partners.write_text(text.replace(POLICE_ENTRY, ""))


def reload_counts(launcher: LocalFederation) -> dict[tuple[str, str], float]:
    """accord_reloads_total by (kind, outcome), from the broker's /metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    address = launcher.metrics_addresses["broker"]
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.labels["kind"], sample.labels["outcome"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "accord_reloads_total"
    }


def ask(launcher, workdir, partner: str, purpose: str, sql: str = COUNT):
    from accord.client import BrokerClient

    ca, cert, key = workdir.partner_credentials(partner)
    with BrokerClient(
        launcher.broker_address, ca, cert, key, purpose=purpose, case_ref="R-1"
    ) as client:
        try:
            return client.query(sql)
        except grpc.RpcError as exc:
            return exc


def served_certificate(launcher, workdir, address: str = "") -> x509.Certificate:
    """The certificate a new TLS connection to the broker (or ``address``) is shown."""
    ca, cert, key = workdir.partner_credentials("crown_attorney")
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(["h2"])
    host, port = (address or launcher.broker_address).rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_a_revoked_partner_is_refused_after_a_reload(federation):
    launcher, workdir, policies = federation
    assert not isinstance(ask(launcher, workdir, "police", "investigation"), grpc.RpcError)
    revoke_police(policies)

    policy, _certificate = sighup_and_wait(launcher, workdir)
    assert policy["outcome"] == "OK" and len(policy["policy_sha256"]) == 64
    start = audit_events(workdir, "start")[-1]
    assert start["policy_sha256"] != policy["policy_sha256"] == policy_digest(policies)
    refused = ask(launcher, workdir, "police", "investigation")
    assert isinstance(refused, grpc.RpcError)
    assert refused.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
    assert ask(launcher, workdir, "crown_attorney", "bail_hearing").table.num_rows == 1


def test_a_broken_policy_is_refused_and_the_one_in_force_stays(federation):
    """A reload that revokes police in partners.yaml but finds purposes.yaml
    broken takes neither change: police is still served."""
    launcher, workdir, policies = federation
    in_force = policy_in_force(workdir)
    assert not isinstance(ask(launcher, workdir, "police", "investigation"), grpc.RpcError)
    revoke_police(policies)
    purposes = policies / "purposes.yaml"
    purposes.write_text(purposes.read_text() + "\n  : this is not YAML [\n")

    policy, _ = sighup_and_wait(launcher, workdir)
    assert policy["outcome"] == "FAILED" and "purposes.yaml" in policy["error"]
    assert policy_in_force(workdir) == in_force
    assert not isinstance(ask(launcher, workdir, "police", "investigation"), grpc.RpcError)
    assert ask(launcher, workdir, "crown_attorney", "bail_hearing").table.num_rows == 1


def test_a_new_certificate_is_served_after_a_reload(federation):
    launcher, workdir, policies = federation
    old = served_certificate(launcher, workdir)
    cert, key = workdir.pki.broker_server()
    cert.unlink()
    key.unlink()
    init_certs(workdir, DEFAULT_FEDERATION, policies)  # issues what is missing
    _, record = sighup_and_wait(launcher, workdir)
    assert record["outcome"] == "OK"
    new = served_certificate(launcher, workdir)
    assert new.serial_number != old.serial_number
    assert record["certificate_serial"] == str(new.serial_number)
    # The Flight SQL port follows the same reload (its own credentials slot).
    flight = served_certificate(launcher, workdir, launcher.flight_address)
    assert flight.serial_number == new.serial_number
    assert ask(launcher, workdir, "crown_attorney", "bail_hearing").table.num_rows == 1


def test_a_certificate_that_does_not_match_its_key_is_refused(federation):
    launcher, workdir, _ = federation
    serving = served_certificate(launcher, workdir)
    cert, _key = workdir.pki.broker_server()
    good = cert.read_bytes()
    cert.write_bytes(workdir.pki.ca_cert().read_bytes())  # the CA's certificate, not the key's
    try:
        _, record = sighup_and_wait(launcher, workdir)
    finally:
        cert.write_bytes(good)
    assert record["outcome"] == "FAILED" and "is not the key of" in record["error"]
    assert served_certificate(launcher, workdir).serial_number == serving.serial_number
    assert ask(launcher, workdir, "crown_attorney", "bail_hearing").table.num_rows == 1


def test_reloads_are_counted_and_the_trail_still_verifies(federation):
    """One SIGHUP with a certificate that does not match its key: the policy
    reloads (counted ok), the certificate is refused (counted failed)."""
    launcher, workdir, _ = federation
    before = reload_counts(launcher)
    cert, _key = workdir.pki.broker_server()
    good = cert.read_bytes()
    cert.write_bytes(workdir.pki.ca_cert().read_bytes())
    try:
        policy, certificate = sighup_and_wait(launcher, workdir)
    finally:
        cert.write_bytes(good)
    assert (policy["outcome"], certificate["outcome"]) == ("OK", "FAILED")
    after = reload_counts(launcher)
    expected = dict.fromkeys(
        [("policy", "ok"), ("policy", "failed"), ("certificate", "ok"), ("certificate", "failed")],
        0.0,
    )
    expected[("policy", "ok")] = 1.0
    expected[("certificate", "failed")] = 1.0
    assert {k: after.get(k, 0.0) - before.get(k, 0.0) for k in expected} == expected
    report = verify(Path(workdir.audit_dir()), load_public_key(workdir.audit_key_pin()))
    assert report.ok, report
