"""Identity on every hop: who may call the broker, and who may call an adapter."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import grpc
import pytest

from accord import tls
from accord.client import BrokerClient
from accord.v1 import adapter_pb2, adapter_pb2_grpc
from tests.pki import create_rogue_ca_client, issue_client_cert

if TYPE_CHECKING:
    from pathlib import Path

    from accord.client import QueryResult
    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC)
SQL = "SELECT count(*) FROM offenders"


def certificate(
    running: Running, tmp_path: Path, name: str, organization: str, from_day: int, to_day: int
) -> tuple[Path, Path]:
    """A partner certificate from the federation CA, valid between two days from now."""
    return issue_client_cert(
        running.workdir.pki,
        name,
        organization,
        not_before=NOW + dt.timedelta(days=from_day),
        not_after=NOW + dt.timedelta(days=to_day),
        out=(tmp_path / f"{name}.pem", tmp_path / f"{name}.key"),
    )


def query_as(running: Running, cert: Path, key: Path, ca: Path | None = None) -> QueryResult:
    ca = ca or running.workdir.pki.ca_cert()
    with BrokerClient(running.address, ca, cert, key) as client:
        return client.query(SQL, purpose="investigation", timeout=10)


def test_registered_partner_is_served(running):
    cert, key = running.workdir.pki.partner("police")
    assert query_as(running, cert, key).table.num_rows == 1


def test_unregistered_certificate_from_the_federation_ca_is_refused(running, tmp_path):
    cert, key = certificate(running, tmp_path, "intruder", "Nobody Inc", -1, 1)
    with pytest.raises(grpc.RpcError) as caught:
        query_as(running, cert, key)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not a registered partner" in (caught.value.details() or "")


def test_registered_name_with_another_organization_is_refused(running, tmp_path):
    cert, key = certificate(running, tmp_path, "police", "Impostor Police", -1, 1)
    with pytest.raises(grpc.RpcError) as caught:
        query_as(running, cert, key)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "organization" in (caught.value.details() or "")


def test_expired_certificate_never_gets_through(running, tmp_path):
    cert, key = certificate(running, tmp_path, "police", "RCMP E Division", -30, -1)
    with pytest.raises(grpc.RpcError) as caught:
        query_as(running, cert, key)
    # Refused in the TLS handshake: the call never reaches a servicer.
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_certificate_from_another_ca_never_gets_through(running, tmp_path):
    _, cert, key = create_rogue_ca_client(tmp_path, "police", "RCMP E Division")
    with pytest.raises(grpc.RpcError) as caught:
        query_as(running, cert, key)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_no_client_certificate_never_gets_through(running):
    credentials = grpc.ssl_channel_credentials(running.workdir.pki.ca_cert().read_bytes())
    channel = grpc.secure_channel(running.address, credentials)
    try:
        from accord.v1 import broker_pb2, broker_pb2_grpc

        stub = broker_pb2_grpc.BrokerStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetCatalog(broker_pb2.CatalogRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        channel.close()


def _adapter_call(running: Running, cert: Path, key: Path) -> adapter_pb2.DescribeResponse:
    address = running.launcher.adapter_addresses["BC"]
    credentials = tls.channel_credentials(running.workdir.pki.ca_cert(), cert, key)
    channel = grpc.secure_channel(address, credentials)
    try:
        response: adapter_pb2.DescribeResponse = adapter_pb2_grpc.AdapterStub(channel).Describe(
            adapter_pb2.DescribeRequest(), timeout=5
        )
        return response
    finally:
        channel.close()


def test_adapter_accepts_the_broker(running):
    cert, key = running.workdir.pki.broker_client()
    assert _adapter_call(running, cert, key).source == "BC"


def test_adapter_refuses_a_partner_even_with_a_valid_certificate(running):
    cert, key = running.workdir.pki.partner("crown_attorney")
    with pytest.raises(grpc.RpcError) as caught:
        _adapter_call(running, cert, key)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "only the Accord broker" in (caught.value.details() or "")


def test_adapter_refuses_a_certificate_claiming_to_be_the_broker(running, tmp_path):
    cert, key = certificate(running, tmp_path, "accord-broker", "Accord Federation", -1, 1)
    with pytest.raises(grpc.RpcError) as caught:
        _adapter_call(running, cert, key)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
