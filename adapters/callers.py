"""Who may call an adapter, checked on every call of every service.

The TLS handshake has already checked that the client certificate chains to
the federation CA. On top of that, each call's certificate must be one of the
federation's own (organization ``Accord Federation``, client usage) with a
name the adapter accepts for that service, and not be revoked:

* ``Scan`` and ``Describe``: the broker only. Its certificate must carry one
  of the federation file's ``broker_identities`` *and* be pinned: its
  fingerprint is one the adapter read from the broker's client certificate
  file. The pin keeps a CA that is misused (or a certificate issued to the
  broker's name by mistake) from opening the sources. A rotation adds a pin
  without removing the old one (SIGHUP, :meth:`CallerGate.pin`): old and new
  certificates both work until the old one expires or is revoked, so the
  adapters take the new pin first, then the broker switches.
* health and reflection: the broker and the operator (``accord-operator``).
  A partner's certificate, valid at the broker, opens nothing here.

It is checked per call, not per connection, so a certificate revoked while a
channel is open is refused on its next call. A stale revocation list still
refuses what it names and does not stop the federation's own hop (the
broker's, to its sources); see ``accord.revocation``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accord import tls
from accord.errors import AccordError
from accord.pki import FEDERATION_ORGANIZATION, OPERATOR_COMMON_NAME

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from adapters.metrics import AdapterMetrics

log = logging.getLogger("accord.adapter")


class Revocations(Protocol):
    def check(self, cert: x509.Certificate, *, allow_stale: bool = False) -> None: ...


@dataclass(frozen=True)
class Caller:
    """The parts of a client certificate the gate decides on."""

    common_name: str
    organization: str
    client_usage: bool
    fingerprint: str
    serial: int
    cert: x509.Certificate


def fingerprint(pem: bytes) -> str:
    """SHA-256 fingerprint (hex) of a PEM certificate."""
    return caller_of(pem).fingerprint


def read_certificates(paths: Iterable[Path]) -> list[x509.Certificate]:
    """The certificates in the given PEM files (a file may hold several)."""
    return [cert for path in paths for cert in x509.load_pem_x509_certificates(path.read_bytes())]


@functools.lru_cache(maxsize=256)
def caller_of(pem: bytes) -> Caller:
    """Parsed once per certificate, not once per call."""
    cert = x509.load_pem_x509_certificate(pem)
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        client_usage = ExtendedKeyUsageOID.CLIENT_AUTH in usage
    except x509.ExtensionNotFound:
        client_usage = False
    return Caller(
        common_name=tls.name_attribute(cert.subject, NameOID.COMMON_NAME),
        organization=tls.name_attribute(cert.subject, NameOID.ORGANIZATION_NAME),
        client_usage=client_usage,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        serial=cert.serial_number,
        cert=cert,
    )


class CallerGate(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Authorizes every call before its handler runs (see the module doc)."""

    def __init__(
        self,
        source_code: str,
        adapter_service: str,
        broker_identities: Iterable[str],
        broker_certificates: Iterable[x509.Certificate],
        revocations: Revocations | None,
        metrics: AdapterMetrics,
        on_refused: Callable[[str, Any, grpc.ServicerContext, grpc.StatusCode], None] | None = None,
    ) -> None:
        self.source_code = source_code
        #: Called with (method, request, context, status) before a refusal
        #: (the adapter's trail records refused data calls).
        self.on_refused = on_refused
        self.adapter_service = adapter_service
        self.revocations = revocations
        self.metrics = metrics
        self.pins: dict[str, x509.Certificate] = {}
        self.use_broker_identities(broker_identities)
        self.pin(broker_certificates)

    def use_broker_identities(self, names: Iterable[str]) -> None:
        """Replaces the broker names accepted from the next call on (SIGHUP)."""
        self.broker_identities = frozenset(names)

    def pin(self, certificates: Iterable[x509.Certificate]) -> list[str]:
        """Adds the broker certificates given to those served, and drops the
        pins of certificates expired since; returns the fingerprints added."""
        now = dt.datetime.now(dt.UTC)
        pins = {fp: c for fp, c in self.pins.items() if c.not_valid_after_utc > now}
        added = []
        for cert in certificates:
            fingerprint = cert.fingerprint(hashes.SHA256()).hex()
            if fingerprint not in pins:
                added.append(fingerprint)
            pins[fingerprint] = cert
        self.pins = pins  # one assignment: a call sees the old set or the new
        return added

    def authorize(self, method: str, request: Any, context: grpc.ServicerContext) -> Caller:
        """The caller, or the call is aborted with the reason (``request`` is
        None for a streamed request)."""
        peer = tls.peer_identity(context.auth_context())
        if peer is None:
            self._refuse(
                method, request, context, grpc.StatusCode.UNAUTHENTICATED, "no certificate"
            )
        caller = caller_of(peer[1])  # type: ignore[index]
        brokers_only = method.startswith(f"/{self.adapter_service}/")
        broker = caller.common_name in self.broker_identities and caller.fingerprint in self.pins
        operator = not brokers_only and caller.common_name == OPERATOR_COMMON_NAME
        if not (
            caller.organization == FEDERATION_ORGANIZATION
            and caller.client_usage
            and (broker or operator)
        ):
            self._refuse(
                method, request, context, grpc.StatusCode.PERMISSION_DENIED, caller.common_name
            )
        if self.revocations is not None:
            try:
                self.revocations.check(caller.cert, allow_stale=True)
            except AccordError as exc:
                log.warning("refused %r: %s", caller.common_name, exc)
                self.metrics.refused_callers.labels(self.source_code).inc()
                self._note(method, request, context, grpc.StatusCode.UNAUTHENTICATED)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        return caller

    def _refuse(
        self,
        method: str,
        request: Any,
        context: grpc.ServicerContext,
        code: grpc.StatusCode,
        who: str,
    ) -> None:
        log.warning("refused %r on %s: only the broker may call this adapter", who, method)
        self.metrics.refused_callers.labels(self.source_code).inc()
        self._note(method, request, context, code)
        context.abort(code, f"adapter {self.source_code} accepts only the Accord broker")

    def _note(
        self, method: str, request: Any, context: grpc.ServicerContext, code: grpc.StatusCode
    ) -> None:
        if self.on_refused is not None and method.startswith(f"/{self.adapter_service}/"):
            self.on_refused(method, request, context, code)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        return _guarded(handler, lambda request, context: self.authorize(method, request, context))


def _guarded(
    handler: grpc.RpcMethodHandler[Any, Any],
    authorize: Callable[[Any, grpc.ServicerContext], Caller],
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler, with ``authorize`` run before its behaviour (given
    the request, or None for a streamed one)."""
    kind = ("stream" if handler.request_streaming else "unary") + (
        "_stream" if handler.response_streaming else "_unary"
    )
    behaviour = getattr(handler, kind)

    def first(request: Any, context: grpc.ServicerContext) -> None:
        authorize(None if handler.request_streaming else request, context)

    if handler.response_streaming:

        def streamed(request: Any, context: grpc.ServicerContext) -> Any:
            first(request, context)
            yield from behaviour(request, context)

        return handler._replace(**{kind: streamed})  # type: ignore[attr-defined,no-any-return]

    def answered(request: Any, context: grpc.ServicerContext) -> Any:
        first(request, context)
        return behaviour(request, context)

    return handler._replace(**{kind: answered})  # type: ignore[attr-defined,no-any-return]
