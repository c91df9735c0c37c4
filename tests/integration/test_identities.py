"""Identities on every hop: who may call an adapter, which adapter the broker
reached, and revocation at each hop, over real gRPC and mutual TLS.

Each attack is tried at the hop that must stop it:
- a partner's certificate (valid at the broker) at an adapter;
- an adapter holding another source's certificate (or the broker's server
  certificate) behind a source's endpoint: the broker sends it no scan;
- a revoked partner certificate at the broker, on a channel already open;
- a revoked broker client certificate at an adapter, on a channel already open;
- a revoked adapter certificate at the broker.

Revocation tests revoke a certificate issued for the test alone, so the
shared federation's own certificates stay valid for every other test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from accord import tls
from accord.errors import SourceUnavailable
from accord.pki import BROKER_COMMON_NAME, FEDERATION_ORGANIZATION
from accord.revocation import RevocationList
from accord.v1 import adapter_pb2, adapter_pb2_grpc
from adapters.backends import open_backend
from adapters.server import create_server
from broker.fanout import AdapterClients
from broker.metrics import BrokerMetrics
from certs.ca import certificate_info
from tests.integration.fake_adapter import FakeAdapter
from tests.pki import issue_extra, revoke

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

#: The partner whose certificate tries the adapters, and a source it may query.
PARTNER = "crown_attorney"


@contextlib.contextmanager
def pinned_channel(
    running: Running, address: str, identity: str, cert: Path, key: Path
) -> Iterator[grpc.Channel]:
    """A channel to ``address`` with the given client certificate, dialling
    it under ``identity`` (as the broker dials a source)."""
    credentials = tls.channel_credentials(running.workdir.pki.ca_cert(), cert, key)
    options = [*tls.CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", identity)]
    with grpc.secure_channel(address, credentials, options=options) as channel:
        yield channel


def adapter_channel(
    running: Running, code: str, cert: Path, key: Path
) -> contextlib.AbstractContextManager[grpc.Channel]:
    """A channel to the running adapter of ``code``, under its own identity."""
    address = running.launcher.adapter_addresses[code]
    return pinned_channel(running, address, running.federation.source(code).identity, cert, key)


def describe(channel: grpc.Channel) -> adapter_pb2.DescribeResponse:
    answer: adapter_pb2.DescribeResponse = adapter_pb2_grpc.AdapterStub(channel).Describe(
        adapter_pb2.DescribeRequest(), timeout=10
    )
    return answer


def scan(channel: grpc.Channel) -> list[adapter_pb2.ScanResponse]:
    request = adapter_pb2.ScanRequest(table="offenders", columns=["fps_number"], query_id="t")
    return list(adapter_pb2_grpc.AdapterStub(channel).Scan(request, timeout=10))


def health_check(channel: grpc.Channel) -> health_pb2.HealthCheckResponse:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)


def list_services(channel: grpc.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    return [s.name for answer in answers for s in answer.list_services_response.service]


CALLS = {"Scan": scan, "Describe": describe, "Health": health_check, "Reflection": list_services}


def refused(call: Any, channel: grpc.Channel) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(channel)
    return caught.value


# -- who may call an adapter ---------------------------------------------------


@pytest.mark.parametrize("code", ["CA-CSC", "BC"])
def test_a_partner_certificate_opens_no_service_of_an_adapter(running: Running, code: str) -> None:
    _, cert, key = running.workdir.partner_credentials(PARTNER)
    with adapter_channel(running, code, cert, key) as channel:
        for name, call in CALLS.items():
            error = refused(call, channel)
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED, name
            assert error.details() == f"adapter {code} accepts only the Accord broker", name


def test_the_operator_sees_health_and_reflection_and_no_data(running: Running) -> None:
    cert, key = running.workdir.pki.operator()
    with adapter_channel(running, "ON", cert, key) as channel:
        assert health_check(channel).status == health_pb2.HealthCheckResponse.SERVING
        assert "accord.v1.Adapter" in list_services(channel)
        for call in (scan, describe):
            assert refused(call, channel).code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_broker_server_certificate_is_no_client_of_an_adapter(running: Running) -> None:
    # Same name as the broker's client certificate, but issued for serving:
    # a stolen server key does not open the sources.
    cert, key = running.workdir.pki.broker_server()
    with adapter_channel(running, "ON", cert, key) as channel:
        error = refused(scan, channel)
    assert error.code() in {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAVAILABLE}


def test_the_broker_client_certificate_is_served(running: Running) -> None:
    cert, key = running.workdir.pki.broker_client()
    with adapter_channel(running, "ON", cert, key) as channel:
        assert describe(channel).source == "ON"
        assert health_check(channel).status == health_pb2.HealthCheckResponse.SERVING


# -- which adapter the broker reached ------------------------------------------


@contextlib.contextmanager
def fake_at(running: Running, code: str, cert: Path, key: Path, log: Path) -> Iterator[str]:
    """A fake adapter for ``code`` that notes every Scan reaching it in
    ``log``, presenting the given certificate; yields its address."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    adapter_pb2_grpc.add_AdapterServicer_to_server(
        FakeAdapter(running.federation, code, "hang", scan_log=log), server
    )
    credentials = tls.server_credentials(running.workdir.pki.ca_cert(), cert, key)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def impostor_certificates(running: Running) -> dict[str, tuple[Path, Path]]:
    pki = running.workdir.pki
    return {"BC's adapter": pki.adapter("BC"), "the broker's server": pki.broker_server()}


@pytest.mark.parametrize("impostor", ["BC's adapter", "the broker's server"])
def test_an_adapter_with_another_certificate_receives_no_scan(
    running: Running, tmp_path: Path, impostor: str
) -> None:
    cert, key = impostor_certificates(running)[impostor]
    log = tmp_path / "scans.log"
    pki = running.workdir.pki
    with fake_at(running, "CA-CSC", cert, key, log) as address:
        federation = running.federation.with_endpoints({"CA-CSC": address})

        metrics = BrokerMetrics()

        async def attempt() -> str:
            cert, key = pki.broker_client()
            clients = AdapterClients(federation, pki.ca_cert(), cert, key, metrics=metrics)
            try:
                with pytest.raises(SourceUnavailable) as caught:
                    await clients.stub("CA-CSC", address, time.monotonic() + 10)
                return str(caught.value)
            finally:
                await clients.close()

        message = asyncio.run(attempt())
        refusals = metrics.adapter_refusals.labels("CA-CSC", "certificate")._value.get()
        # And the channel itself, dialling CA-CSC's name: the handshake fails.
        with pinned_channel(running, address, "adapter-ca-csc", *pki.broker_client()) as channel:
            error = refused(scan, channel)
    assert message == (
        "source CA-CSC: unavailable: its adapter did not present the certificate of adapter-ca-csc"
    )
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert refusals == 1
    assert not log.exists() or log.read_text() == "", "a scan reached the impostor"


# -- revocation ----------------------------------------------------------------


def test_a_revoked_partner_is_refused_on_its_next_call_on_an_open_channel(
    running: Running, tmp_path: Path
) -> None:
    pki = running.workdir.pki
    partner = running.policy.registry.partners[PARTNER]
    cert, key = issue_extra(pki, "partner", PARTNER, partner.organization, tmp_path)
    serial = certificate_info(cert.read_bytes()).serial
    from accord.client import BrokerClient

    with BrokerClient(
        running.address, pki.ca_cert(), cert, key, purpose="bail_hearing", case_ref="R-2026-0042"
    ) as client:
        sql = "SELECT count(*) AS n FROM offenders"
        assert client.query(sql, timeout=20).table.num_rows == 1
        revoke(pki, serial)
        with pytest.raises(grpc.RpcError) as caught:
            client.query(sql, timeout=20)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in (caught.value.details() or "")
    # The partner's own certificate is untouched.
    with running.client(PARTNER, purpose="bail_hearing", case_ref="R-2026-0042") as client:
        assert client.query("SELECT count(*) AS n FROM offenders", timeout=20).table.num_rows == 1


@contextlib.contextmanager
def own_adapter(
    running: Running, code: str, cert: Path, key: Path, broker_cert: Path
) -> Iterator[str]:
    """A real adapter of ``code`` in process, over that source's data, with
    the given certificate, pinning ``broker_cert``; yields its address."""
    pki = running.workdir.pki
    source = running.federation.source(code)
    adapter = create_server(
        running.federation,
        source,
        open_backend(source, running.workdir.path),
        ca=pki.ca_cert(),
        cert=cert,
        key=key,
        broker_certs=[broker_cert],
        revocations=RevocationList(pki.crl(), pki.ca_cert()),
    )
    try:
        yield f"127.0.0.1:{adapter.port}"
    finally:
        adapter.server.stop(None)


def test_a_revoked_broker_client_certificate_is_refused_at_the_adapter(
    running: Running, tmp_path: Path
) -> None:
    """An adapter pinning a broker certificate of this test's own: served on
    an open channel until that certificate is revoked, then refused on it."""
    pki = running.workdir.pki
    cert, key = issue_extra(
        pki, "broker-client", BROKER_COMMON_NAME, FEDERATION_ORGANIZATION, tmp_path
    )
    serial = certificate_info(cert.read_bytes()).serial
    with (
        own_adapter(running, "SK", *pki.adapter("SK"), broker_cert=cert) as address,
        pinned_channel(running, address, "adapter-sk", cert, key) as channel,
    ):
        assert describe(channel).source == "SK"
        revoke(pki, serial)
        error = refused(describe, channel)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in (error.details() or "")
        assert refused(scan, channel).code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_broker_named_certificate_that_is_not_pinned_is_refused(
    running: Running, tmp_path: Path
) -> None:
    """Issued by the federation CA to the broker's name, valid, not revoked:
    still not the broker an adapter pinned."""
    pki = running.workdir.pki
    cert, key = issue_extra(
        pki, "broker-client", BROKER_COMMON_NAME, FEDERATION_ORGANIZATION, tmp_path
    )
    with adapter_channel(running, "SK", cert, key) as channel:
        for name, call in CALLS.items():
            assert refused(call, channel).code() == grpc.StatusCode.PERMISSION_DENIED, name


async def scan_then_revoke(
    federation: Any, address: str, revocations: RevocationList, serial: int, pki: Any
) -> tuple[int, str]:
    """One scan through a verified channel; then, once the adapter's
    certificate is revoked, the next stub is refused."""
    cert, key = pki.broker_client()
    clients = AdapterClients(federation, pki.ca_cert(), cert, key, revocations=revocations)
    try:
        stub = await clients.stub("CA-CSC", address, time.monotonic() + 10)
        request = adapter_pb2.ScanRequest(table="offenders", columns=["fps_number"])
        answered = [m async for m in stub.Scan(request, timeout=10)]
        revoke(pki, serial)
        with pytest.raises(SourceUnavailable) as caught:
            await clients.stub("CA-CSC", address, time.monotonic() + 10)
        return len(answered), str(caught.value)
    finally:
        await clients.close()


def test_a_revoked_adapter_certificate_is_refused_by_the_broker(
    running: Running, tmp_path: Path
) -> None:
    """A second CA-CSC adapter with a certificate of its own: trusted until
    that certificate is revoked, then refused before any scan."""
    pki = running.workdir.pki
    identity = running.federation.source("CA-CSC").identity
    cert, key = issue_extra(pki, "adapter", identity, FEDERATION_ORGANIZATION, tmp_path)
    serial = certificate_info(cert.read_bytes()).serial
    revocations = RevocationList(pki.crl(), pki.ca_cert())
    with own_adapter(running, "CA-CSC", cert, key, pki.broker_client()[0]) as address:
        federation = running.federation.with_endpoints({"CA-CSC": address})
        answered, message = asyncio.run(
            scan_then_revoke(federation, address, revocations, serial, pki)
        )
    assert answered >= 2  # a header and a trailer at least
    assert message == "source CA-CSC: unavailable: its adapter presented a revoked certificate"
