"""gRPC credentials for every hop of the federation: mutual TLS only.

Each server demands a client certificate that chains to the federation CA
(``require_client_auth=True``); which certificates it then accepts is the
servicer's business (the broker maps partners, an adapter accepts only the
broker).
"""

from __future__ import annotations

import functools
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


def _read(path: Path) -> bytes:
    return path.read_bytes()


def server_credentials(ca: Path, cert: Path, key: Path) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(_read(key), _read(cert))],
        root_certificates=_read(ca),  # only the federation CA is trusted
        require_client_auth=True,  # no certificate, no connection
    )


class ReloadableServerCredentials:
    """Server credentials whose certificate, key and trusted CA can be
    replaced while the server runs (``reload``). gRPC asks for the new
    configuration at the next handshake; connections already open keep theirs.
    """

    def __init__(self, ca: Path, cert: Path, key: Path) -> None:
        self.ca, self.cert, self.key = ca, cert, key
        self._lock = threading.Lock()
        # One slot per listening port: gRPC asks each port's credentials
        # apart, and each must see a reload once.
        self._pending: list[grpc.ServerCertificateConfiguration | None] = []
        self._configuration, self.current = self._load()
        self.credentials = self.another_port()

    def another_port(self) -> grpc.ServerCredentials:
        """Credentials for one more port (the Flight SQL endpoint's) that
        follow the same reloads."""
        with self._lock:
            slot = len(self._pending)
            self._pending.append(None)
            configuration = self._configuration
        # The fetcher may return None ("no change"); the stubs do not say so.
        return grpc.dynamic_ssl_server_credentials(
            configuration,
            functools.partial(self._fetch, slot),  # type: ignore[arg-type]
            require_client_authentication=True,
        )

    def _fetch(self, slot: int) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:  # called by gRPC at each handshake; None keeps the current one
            pending, self._pending[slot] = self._pending[slot], None
            return pending

    def reload(self) -> x509.Certificate:
        """Reads the files again; the next handshake on each port uses them."""
        configuration, cert = self._load()
        with self._lock:
            self._pending = [configuration] * len(self._pending)
            self._configuration = configuration
            self.current = cert
        return cert

    def _load(self) -> tuple[grpc.ServerCertificateConfiguration, x509.Certificate]:
        """Refuses (ValueError) a certificate that is not valid now or does not
        match its key, rather than have every handshake fail afterwards."""
        cert_pem, key_pem, ca_pem = _read(self.cert), _read(self.key), _read(self.ca)
        x509.load_pem_x509_certificates(ca_pem)  # the CA file parses
        cert = check_key_pair(self.cert, self.key)
        configuration = grpc.ssl_server_certificate_configuration(
            [(key_pem, cert_pem)], root_certificates=ca_pem
        )
        return configuration, cert


def check_key_pair(cert_path: Path, key_path: Path) -> x509.Certificate:
    """The certificate, once it is valid now and ``key_path`` holds its key
    (else ValueError): a pair to switch to before any handshake uses it."""
    cert = x509.load_pem_x509_certificate(_read(cert_path))
    key = serialization.load_pem_private_key(_read(key_path), password=None)
    now = datetime.now(UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ValueError(
            f"{cert_path} is not valid now (valid "
            f"{cert.not_valid_before_utc:%Y-%m-%d} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d})"
        )
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if cert.public_key().public_bytes(encoding, public) != key.public_key().public_bytes(
        encoding, public
    ):
        raise ValueError(f"{key_path} is not the key of {cert_path}")
    return cert


def channel_credentials(ca: Path, cert: Path, key: Path) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca),
        private_key=_read(key),
        certificate_chain=_read(cert),
    )


#: Milliseconds between a channel's attempts to reconnect to a peer that went
#: away: gRPC's defaults (1 s, growing 1.6 times up to 120 s) kept a restarted
#: adapter out for over a minute. Capped at 1 s, a peer back on its address is
#: reached again within RECONNECT_MAX_MS (plus gRPC's 20 % jitter); a peer that
#: stays down costs one refused connection a second.
RECONNECT_INITIAL_MS = 100
RECONNECT_MAX_MS = 1000

#: Channel options shared by every client. Arrow batches are sized under the
#: default 4 MiB limit; the receive limit is raised deliberately for headroom.
CHANNEL_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.initial_reconnect_backoff_ms", RECONNECT_INITIAL_MS),
    ("grpc.min_reconnect_backoff_ms", RECONNECT_INITIAL_MS),
    ("grpc.max_reconnect_backoff_ms", RECONNECT_MAX_MS),
]

SERVER_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_receive_message_length", 1 * 1024 * 1024),  # requests are small
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.so_reuseport", 0),  # a port in use is an error, not a shared listener
]


def name_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    """The first value of ``oid`` in a certificate name, "" without one."""
    values = name.get_attributes_for_oid(oid)
    value = values[0].value if values else ""
    return value.decode() if isinstance(value, bytes) else str(value)


def peer_identity(auth_context: Mapping[str, Any]) -> tuple[str, bytes] | None:
    """(common name, PEM certificate) of the TLS peer, or None without one.

    ``auth_context`` is gRPC's: each key maps to a list of byte strings.
    """
    names = list(auth_context.get("x509_common_name") or ())
    pems = list(auth_context.get("x509_pem_cert") or ())
    if not names or not pems:
        return None
    return names[0].decode("utf-8", "replace"), pems[0]
