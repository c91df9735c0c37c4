"""Reloading the policy, the broker's certificates and the revocation list
without a restart.

``accord serve broker`` reloads on SIGHUP: the policy, the server
certificate partners see, the client certificate adapters see, and the
revocation list. Each part is all or nothing: a policy with any problem, a
certificate that is expired or does not match its key, or a list the CA did
not sign is refused and the one in force stays. A rotation overlaps: the
old certificates stay valid (adapters accept the broker by name) until they
expire or are revoked, so nothing in flight fails. Either way the attempt is an
audit record (an administrative event) and a count in /metrics, so a change
of who may see what is as accountable as a query.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes

from accord import tls
from accord.errors import AccordError
from broker.policy.store import PolicySet
from broker.record import write_audit

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography import x509

    from accord.audit.log import AuditLog
    from accord.federation import Federation
    from accord.revocation import RevocationList
    from accord.tls import ReloadableServerCredentials
    from broker.metrics import BrokerMetrics
    from broker.pipeline import QueryPipeline
    from broker.readiness import Readiness

log = logging.getLogger("accord.reload")


def policy_digest(directory: Path) -> str:
    """SHA-256 over every policy file's relative path and content."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*.yaml") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def certificate_details(cert: x509.Certificate) -> dict[str, Any]:
    return {
        "certificate_sha256": cert.fingerprint(hashes.SHA256()).hex(),
        "certificate_serial": str(cert.serial_number),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def load_policy(directory: Path, federation: Federation) -> tuple[PolicySet, str]:
    """The policy and the digest of exactly the files it was read from: files
    that change while being read are refused, not half taken."""
    before = policy_digest(directory)
    policy = PolicySet.load(directory, federation)
    if policy_digest(directory) != before:
        raise AccordError(
            "the policy files changed while they were being read; "
            "reload again once they are written"
        )
    return policy, before


@dataclass
class Reloader:
    policies_dir: Path
    federation: Federation
    pipeline: QueryPipeline
    credentials: ReloadableServerCredentials
    certificates: list[Path]
    audit: AuditLog
    metrics: BrokerMetrics
    readiness: Readiness | None = None
    #: (certificate, key) the broker presents to adapters; None: not reloaded
    client_certificate: tuple[Path, Path] | None = None
    revocations: RevocationList | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def reload(self) -> None:
        """Policy, certificates, revocation list; one audit record for each attempt."""
        async with self._lock:  # two SIGHUPs in a row reload one after the other
            await self._reload_policy()
            await self._reload_certificate()
            await self._reload_client_certificate()
            await self._reload_revocations()

    async def _reload_policy(self) -> None:
        record: dict[str, Any] = {"event": "policy_reload"}
        try:
            policy, digest = await asyncio.to_thread(
                load_policy, self.policies_dir, self.federation
            )
        except (AccordError, OSError) as exc:
            record.update(outcome="FAILED", error=str(exc))
            log.error("policy reload refused; the policy in force stays: %s", exc)
        else:
            self.pipeline.use_policies(policy)
            record.update(
                outcome="OK",
                policy_sha256=digest,
                roles=len(policy.roles),
                partners=len(policy.registry.partners),
            )
            log.info(
                "policy reloaded: %d roles, %d partners, sha256 %s",
                len(policy.roles),
                len(policy.registry.partners),
                digest[:12],
            )
        await self._finish("policy", record)

    async def _reload_certificate(self) -> None:
        record: dict[str, Any] = {
            "event": "certificate_reload",
            "certificate": str(self.credentials.cert),
        }
        try:
            cert = await asyncio.to_thread(self.credentials.reload)
        except (ValueError, OSError) as exc:
            record.update(outcome="FAILED", error=str(exc))
            log.error("certificate reload refused; the certificate in use stays: %s", exc)
        else:
            self.metrics.watch_certificates(self.certificates)
            record.update(outcome="OK", **certificate_details(cert))
            log.info(
                "certificate reloaded: serial %s, valid to %s",
                cert.serial_number,
                cert.not_valid_after_utc.date(),
            )
        await self._finish("certificate", record)

    async def _reload_client_certificate(self) -> None:
        if self.client_certificate is None:
            return
        cert_path, key_path = self.client_certificate
        record: dict[str, Any] = {
            "event": "client_certificate_reload",
            "certificate": str(cert_path),
        }
        try:
            cert = await asyncio.to_thread(tls.check_key_pair, cert_path, key_path)
            self.pipeline.clients.use_certificate(cert_path, key_path)
        except (ValueError, OSError, ssl.SSLError) as exc:
            record.update(outcome="FAILED", error=str(exc))
            log.error("client certificate reload refused; the one in use stays: %s", exc)
        else:
            self.metrics.watch_certificates(self.certificates)
            record.update(outcome="OK", **certificate_details(cert))
            log.info("client certificate reloaded: serial %s", cert.serial_number)
        await self._finish("client_certificate", record)

    async def _reload_revocations(self) -> None:
        if self.revocations is None:
            return
        record: dict[str, Any] = {"event": "revocation_list_reload"}
        try:
            changed = await asyncio.to_thread(self.revocations.reload)
        except AccordError as exc:
            record.update(outcome="FAILED", error=str(exc))
            log.error("revocation list reload refused; the list in force stays: %s", exc)
        else:
            record.update(outcome="OK", changed=changed, **self.revocations.summary())
            log.info("revocation list: number %s", record["crl_number"])
        await self._finish("revocation_list", record)

    async def _finish(self, kind: str, record: dict[str, Any]) -> None:
        self.metrics.reloads.labels(kind, record["outcome"].lower()).inc()
        try:
            await write_audit(record, self.audit, self.metrics, self.readiness)
        except AccordError as exc:  # the reload stands; the failure is in /metrics and health
            log.error("could not audit the %s reload: %s", kind, exc)
