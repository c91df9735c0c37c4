"""gRPC credentials for every hop of the federation: mutual TLS only.

Each server demands a client certificate that chains to the federation CA
(``require_client_auth=True``); which certificates it then accepts is the
servicer's business (the broker maps partners, an adapter accepts only the
broker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

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


def channel_credentials(ca: Path, cert: Path, key: Path) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca),
        private_key=_read(key),
        certificate_chain=_read(cert),
    )


#: Channel options shared by every client. Arrow batches are sized under the
#: default 4 MiB limit; the receive limit is raised deliberately for headroom.
CHANNEL_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]

SERVER_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_receive_message_length", 1 * 1024 * 1024),  # requests are small
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.so_reuseport", 0),  # a port in use is an error, not a shared listener
]


def peer_identity(auth_context: Mapping[str, Any]) -> tuple[str, bytes] | None:
    """(common name, PEM certificate) of the TLS peer, or None without one.

    ``auth_context`` is gRPC's: each key maps to a list of byte strings.
    """
    names = list(auth_context.get("x509_common_name") or ())
    pems = list(auth_context.get("x509_pem_cert") or ())
    if not names or not pems:
        return None
    return names[0].decode("utf-8", "replace"), pems[0]
