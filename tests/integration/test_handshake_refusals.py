"""Handshakes the broker refuses are counted and audited, and gRPC core's own
lines reach the broker's log as JSON: a real `accord serve broker` process,
real mTLS, clients with a certificate from another CA, with none, with an
expired one."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from accord import tls
from accord.audit.search import search
from accord.v1 import broker_pb2, broker_pb2_grpc
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from app.commands import init_certs
from tests.pki import create_rogue_ca_client, issue_client_cert

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

WITHIN_S = 30.0
NOW = dt.datetime.now(dt.UTC)


def until(check: Callable[[], Any], what: str) -> Any:
    """``check()`` once it is truthy; fails after WITHIN_S (polls an event
    another process makes, never stands in for one)."""
    deadline = time.monotonic() + WITHIN_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"within {WITHIN_S:.0f} s: {what}")


class Broker:
    """One `accord serve broker` process on its own work dir (no adapters:
    handshakes need none), with the trail's window as given."""

    def __init__(self, workdir: Workdir, window_s: float) -> None:
        self.workdir = workdir
        self.port_file = workdir.run / "broker.addr"
        self.log = workdir.path / "broker.log"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app.cli",
                    "serve",
                    "broker",
                    "--workdir",
                    str(workdir.path),
                    "--federation",
                    str(DEFAULT_FEDERATION),
                    "--policies",
                    str(DEFAULT_POLICIES),
                    "--port",
                    "0",
                    "--port-file",
                    str(self.port_file),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "ACCORD_HANDSHAKE_AUDIT_WINDOW_S": str(window_s)},
            )
        self.address = until(
            lambda: self.port_file.is_file() and self.port_file.read_text().strip(),
            "the broker to serve",
        )

    def metric(self, name: str, **labels: str) -> float:
        address = self.workdir.metrics_address_file("broker").read_text().strip()
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0

    def refusals(self) -> list[dict[str, Any]]:
        return [
            r for r in search(self.workdir.audit_dir()) if r.get("event") == "handshake_refused"
        ]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=WITHIN_S)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Workdir:
    wd = Workdir(tmp_path_factory.mktemp("trail-handshakes"))
    init_certs(wd, DEFAULT_FEDERATION, DEFAULT_POLICIES)
    return wd


@pytest.fixture
def broker(workdir: Workdir) -> Iterator[Broker]:
    for path in (workdir.audit_dir(), workdir.run):
        if path.is_dir():
            for child in path.iterdir():
                child.unlink()
    workdir.audit_key_pin().unlink(missing_ok=True)
    workdir.audit_key().unlink(missing_ok=True)
    running = Broker(workdir, window_s=3600)
    yield running
    running.stop()


def call(address: str, credentials: grpc.ChannelCredentials) -> grpc.StatusCode:
    with grpc.secure_channel(address, credentials, options=tls.CHANNEL_OPTIONS) as channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def rogue(tmp_path: Path, ca: Path) -> grpc.ChannelCredentials:
    _, cert, key = create_rogue_ca_client(tmp_path, "police", "RCMP E Division")
    return tls.channel_credentials(ca, cert, key)


def expired(workdir: Workdir, tmp_path: Path) -> grpc.ChannelCredentials:
    cert, key = issue_client_cert(
        workdir.pki,
        "police",
        "RCMP E Division",
        not_before=NOW - dt.timedelta(days=30),
        not_after=NOW - dt.timedelta(days=1),
        out=(tmp_path / "expired.pem", tmp_path / "expired.key"),
    )
    return tls.channel_credentials(workdir.pki.ca_cert(), cert, key)


def test_refused_handshakes_are_counted_by_reason_and_audited_once_a_window(broker, tmp_path):
    ca = broker.workdir.pki.ca_cert()
    attempts = {
        "untrusted_certificate": rogue(tmp_path, ca),
        "no_certificate": grpc.ssl_channel_credentials(ca.read_bytes()),
        "expired_certificate": expired(broker.workdir, tmp_path),
    }
    for reason, credentials in attempts.items():
        assert call(broker.address, credentials) == grpc.StatusCode.UNAVAILABLE
        counted = functools.partial(broker.metric, "accord_handshake_refusals_total", reason=reason)
        until(counted, f"accord_handshake_refusals_total{{reason={reason}}} to count it")
        assert counted() == 1
    # The first refusal from 127.0.0.1 is recorded at once; the next two
    # fall in its window and wait for its summary.
    first = until(broker.refusals, "the first refusal's record")
    assert first == [
        {**first[0], "peer": "127.0.0.1", "count": 1, "kind": "first"},
    ]
    assert first[0]["reasons"] == {"untrusted_certificate": 1}
    broker.stop()  # closes the window: its summary is written on the way out
    summary = broker.refusals()[1:]
    assert [(r["kind"], r["peer"], r["count"], r["reasons"]) for r in summary] == [
        ("summary", "127.0.0.1", 2, {"expired_certificate": 1, "no_certificate": 1})
    ]
    # No plain-text line of gRPC core reached the broker's log: every line is JSON.
    lines = broker.log.read_text().splitlines()
    assert lines
    parsed = [json.loads(line) for line in lines]
    core = [p for p in parsed if p.get("logger") == "grpc.core"]
    assert any("Handshake failed" in p["message"] for p in core)


def test_bad_bodies_and_unknown_callers_are_counted_not_taken_for_refused_handshakes(
    broker, tmp_path
):
    ca = broker.workdir.pki.ca_cert()
    cert, key = broker.workdir.pki.partner("police")
    options = tls.CHANNEL_OPTIONS
    with grpc.secure_channel(
        broker.address, tls.channel_credentials(ca, cert, key), options=options
    ) as channel:
        raw = channel.unary_unary(
            "/accord.v1.Broker/GetCatalog",
            request_serializer=lambda body: body,
            response_deserializer=lambda body: body,
        )
        with pytest.raises(grpc.RpcError) as caught:
            raw(b"\xff\xff\xff", timeout=10)  # not a protobuf message
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    intruder = issue_client_cert(
        broker.workdir.pki,
        "intruder",
        "Nobody Inc",
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=1),
        out=(tmp_path / "intruder.pem", tmp_path / "intruder.key"),
    )
    with grpc.secure_channel(
        broker.address, tls.channel_credentials(ca, *intruder), options=options
    ) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            broker_pb2_grpc.BrokerStub(channel).GetCatalog(broker_pb2.CatalogRequest(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert broker.metric("accord_malformed_requests_total", reason="undecodable") == 1
    assert broker.metric("accord_malformed_requests_total", reason="unknown_caller") == 1
    assert broker.metric("accord_handshake_refusals_total", reason="untrusted_certificate") == 0
