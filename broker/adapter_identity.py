"""Is the server at an adapter endpoint that source's adapter, with a
certificate still in force?

Two checks, for two different attacks:

* **Another source's certificate** (or the broker's own server certificate)
  behind a source's endpoint is refused by the TLS handshake itself: the
  broker dials each source under the name its adapter's certificate must
  carry (``Source.identity``, via ``grpc.ssl_target_name_override``), so the
  handshake fails and no scan is sent.
* **A revoked adapter certificate** cannot be refused by that handshake:
  grpcio checks a server's chain and name but no revocation list, and gives a
  client no access to the certificate it was shown. So before a channel's
  first scan, after every reconnection and after every new revocation list,
  :class:`AdapterVerifier` opens its own TLS connection to the endpoint (with
  the broker's client certificate, under the same name), reads the
  certificate the adapter presents and checks it against the list. Until that
  passes no scan is sent on the channel. The check binds to the endpoint, not
  to the gRPC connection: an attacker who could answer the probe with the real
  adapter and the channel with a revoked key would have to sit on the network
  path and switch between two connections milliseconds apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import TYPE_CHECKING, Protocol

from cryptography import x509

from accord.errors import AccordError, SourceTimedOut, SourceUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from accord.federation import Source

log = logging.getLogger("accord.adapter_identity")

#: ALPN gRPC speaks; a gRPC server may refuse a TLS client without it.
_ALPN = ["h2"]


class Revocations(Protocol):
    """What the verifier needs of a revocation list (``accord.revocation``)."""

    def check(self, cert: x509.Certificate, *, allow_stale: bool = False) -> None: ...

    @property
    def number(self) -> int | None: ...


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as (host, port)."""
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit():
        raise SourceUnavailable("", f"endpoint {endpoint!r} is not host:port")
    return host.strip("[]"), int(port)


class AdapterVerifier:
    """Checks the certificate an adapter endpoint presents: the source's name
    (the TLS library checks chain and name) and, if a list is given, that it
    is not revoked."""

    def __init__(
        self,
        ca: Path,
        cert: Path,
        key: Path,
        revocations: Revocations | None,
        on_refused: Callable[[str, str], None] | None = None,
    ) -> None:
        self.revocations = revocations
        self.on_refused = on_refused or (lambda source, reason: None)
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        context.load_cert_chain(str(cert), str(key))
        context.set_alpn_protocols(_ALPN)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._context = context

    async def verify(self, source: Source, endpoint: str, timeout: float) -> x509.Certificate:
        """The adapter's certificate, or SourceUnavailable saying why not (the
        reason is the source's, and never names the endpoint)."""
        host, port = split_endpoint(endpoint)
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(max(timeout, 0.001)):
                _, writer = await asyncio.open_connection(
                    host, port, ssl=self._context, server_hostname=source.identity
                )
                der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        except ssl.SSLCertVerificationError as exc:
            self.on_refused(source.code, "certificate")
            log.error(
                "source %s: the adapter at %s is not %s: %s",
                source.code,
                endpoint,
                source.identity,
                exc.verify_message,
            )
            raise SourceUnavailable(
                source.code,
                f"unavailable: its adapter did not present the certificate of {source.identity}",
            ) from exc
        except TimeoutError as exc:
            raise SourceTimedOut(source.code, "did not answer before the query's deadline") from exc
        except (OSError, ssl.SSLError) as exc:
            log.info("source %s: adapter at %s unreachable: %s", source.code, endpoint, exc)
            raise SourceUnavailable(
                source.code, "unavailable: its adapter cannot be reached"
            ) from exc
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
        cert = x509.load_der_x509_certificate(der)
        if self.revocations is not None:
            try:
                # Stale lists still refuse what they name; a stale list does
                # not stop the federation's own hops (see accord.revocation).
                self.revocations.check(cert, allow_stale=True)
            except AccordError as exc:
                self.on_refused(source.code, "revoked")
                log.error("source %s: adapter certificate refused: %s", source.code, exc)
                raise SourceUnavailable(
                    source.code, "unavailable: its adapter presented a revoked certificate"
                ) from exc
        return cert
