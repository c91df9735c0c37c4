"""gRPC core's log lines, as grpcio 1.85 writes them with GRPC_TRACE=handshaker:
a server's refused handshake is recognised with its peer and reason; a
client's failed handshake (the broker calling an adapter) is not."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

from accord.corelog import (
    CoreLogReader,
    HandshakeRefusal,
    handshake_refusal,
    parse_records,
    reason_of,
)
from broker.refusals import HandshakeRefusals

# Shortened from a real refused handshake (certificate from another CA).
SERVER_SIDE = [
    "I1201 13:01:57.203174   12472 ssl_transport_security.cc:2563] Handshake failed with "
    "error SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:"
    "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate",
    "I1201 13:01:57.203211   12472 handshaker.cc:155] CallNextHandshakerLocked: error=UNKNOWN: "
    "Ssl handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:"
    "OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate: OK",
    "=== Source Location Trace: ===",
    "src/core/util/status_helper.cc:68",
    " shutdown=false index=2, args={endpoint=0x7f9434001c20, args={grpc.experimental."
    "event_engine=0x55a291f0d720, grpc.internal.endpoint_local_address=ipv4:127.0.0.1:44671, "
    "grpc.internal.endpoint_peer_address=ipv4:10.1.2.3:44424, grpc.internal.security_connector"
    "=0x55a291f9e090, grpc.internal.server_credentials=0x55a291f144f0}}",
]
CLIENT_SIDE = [
    "I1201 13:01:57.203455   12475 handshaker.cc:155] CallNextHandshakerLocked: error=UNKNOWN: "
    "Custom verification check failed with error: UNAUTHENTICATED: Hostname Verification "
    "Check failed. shutdown=false index=4, args={endpoint=0x7f9444001870, args={grpc."
    "default_authority=broker, grpc.internal.channel_credentials=0x55a291f9fd10}}",
]
SUCCEEDED = [
    "I1201 13:01:57.201427   12473 handshaker.cc:155] CallNextHandshakerLocked: error=OK "
    "shutdown=false index=1, args={endpoint=0x7f9434001c20, args={grpc.internal."
    "endpoint_peer_address=ipv4:127.0.0.1:44424, grpc.internal.server_credentials=0x55}}",
]


def test_a_servers_refused_handshake_names_peer_and_reason():
    records = parse_records(SERVER_SIDE)
    assert [r.where for r in records] == ["ssl_transport_security.cc:2563", "handshaker.cc:155"]
    refusals = [handshake_refusal(r) for r in records]
    assert refusals == [None, HandshakeRefusal("10.1.2.3:44424", "untrusted_certificate")]
    assert refusals[1] is not None and refusals[1].host == "10.1.2.3"


def test_client_side_failures_and_successes_are_not_refusals():
    for lines in (CLIENT_SIDE, SUCCEEDED):
        assert [handshake_refusal(r) for r in parse_records(lines)] == [None]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("CERTIFICATE_VERIFY_FAILED: certificate has expired", "expired_certificate"),
        ("PEER_DID_NOT_RETURN_A_CERTIFICATE: Invalid certificate", "no_certificate"),
        ("CERTIFICATE_VERIFY_FAILED: unable to get local issuer", "untrusted_certificate"),
        ("WRONG_VERSION_NUMBER: Invalid certificate verification context", "not_tls"),
        ("Socket closed", "other"),
    ],
)
def test_reasons_are_a_few_labels(text, reason):
    assert reason_of(text) == reason


def test_ipv6_peers_lose_their_port():
    assert HandshakeRefusal("[::1]:5000", "other").host == "::1"
    assert HandshakeRefusal("", "other").host == ""


def test_the_reader_logs_every_record_and_hands_refusals_on(caplog):
    read_fd, write_fd = os.pipe()
    reader = CoreLogReader(read_fd)
    seen: list[HandshakeRefusal] = []
    reader.listen(seen.append)
    reader.start()
    os.write(write_fd, ("\n".join([*SERVER_SIDE, *CLIENT_SIDE]) + "\n").encode())
    with caplog.at_level(logging.DEBUG, logger="grpc.core"):
        os.close(write_fd)  # EOF: the reader flushes and ends
        reader.join(10)
    assert not reader._thread.is_alive()
    assert seen == [HandshakeRefusal("10.1.2.3:44424", "untrusted_certificate")]
    levels = [(r.levelname, r.core_source) for r in caplog.records if r.name == "grpc.core"]
    assert levels == [
        ("INFO", "ssl_transport_security.cc:2563"),
        ("DEBUG", "handshaker.cc:155"),
        ("DEBUG", "handshaker.cc:155"),
    ]
    os.close(read_fd)


def test_one_record_per_peer_per_window_with_a_count():
    now = [1000.0]
    written: list[dict[str, object]] = []

    async def write(record: dict[str, object]) -> None:
        written.append(record)

    async def scenario() -> list[dict[str, object]]:
        refusals = HandshakeRefusals(None, write, window_s=60, clock=lambda: now[0])
        for reason in ("no_certificate", "no_certificate", "expired_certificate"):
            refusals.refused(HandshakeRefusal("10.0.0.1:1", reason))
        refusals.refused(HandshakeRefusal("10.0.0.2:9", "not_tls"))
        await asyncio.sleep(0)  # let the write tasks run
        assert [(r["peer"], r["kind"], r["count"]) for r in written] == [
            ("10.0.0.1", "first", 1),
            ("10.0.0.2", "first", 1),
        ]
        now[0] += 61
        refusals.flush()
        refusals.refused(HandshakeRefusal("10.0.0.1:2", "no_certificate"))  # a new window
        await refusals.drain()
        return written[2:]

    later = asyncio.run(scenario())
    assert [(r["peer"], r["kind"], r["count"], r["reasons"]) for r in later] == [
        ("10.0.0.1", "summary", 2, {"expired_certificate": 1, "no_certificate": 1}),
        ("10.0.0.1", "first", 1, {"no_certificate": 1}),
    ]
