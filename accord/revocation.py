"""The federation's certificate revocation list, as every hop checks it.

``accord certs crl`` (and every ``accord certs revoke``) publishes
``crl.pem`` in the PKI directory: an X.509 v2 CRL signed by the federation
CA, with a CRL number that grows with each publication and a next-update
time (7 days ahead by default). A server holds one :class:`RevocationList`
and calls :meth:`RevocationList.check` with each caller's certificate.

Reloading. ``check`` stats the file on every call (device, inode, size,
mtime): a changed file is read again before the answer, so a revocation
takes effect on the next call, on an open channel too, without a restart
and without a signal. :meth:`~RevocationList.reload` does the same on demand
(SIGHUP) and says whether a new list was taken. Nothing is parsed on the hot
path unless the file changed. Publish by writing a new file and renaming it
over the old one (``accord certs`` does); a file rewritten in place within one
mtime tick at the same size is not noticed.

What is refused, and what then stays in force. A list is taken only if it
parses, is signed by the CA in ``ca_path`` (read again with each list), has
a next-update time after its this-update time, is a full list (not a delta)
and is newer than the list in force (a higher CRL number, when both come
from the same CA: replaying an old list must not un-revoke anyone). At start a bad file is
a :class:`~accord.errors.ConfigError` (the server does not start). Later, a
bad or missing file leaves the list in force untouched: the problem is
logged once per bad file, appended to :attr:`RevocationList.problems` and
passed to ``on_problem`` (for a metric). Deleting the file therefore
un-revokes nobody; the old list simply goes stale at its next update.

Stale lists: a decision. Past its next-update time a list can no longer say
whether a certificate was revoked since, so ``check`` raises
:class:`~accord.errors.RevocationStale` (a revoked certificate still raises
:class:`~accord.errors.CertificateRevoked` first). Partners fail closed:
the broker calls ``check(cert)`` and a partner is refused until the operator
publishes a fresh list. The federation's own hops (broker and adapters,
whose certificates the operator controls) may choose availability instead
with ``check(cert, allow_stale=True)``: the list in force is still applied,
only its age is forgiven. Both errors are ``UNAUTHENTICATED`` to a caller
and their messages carry no path or internal detail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from accord.errors import CertificateRevoked, ConfigError, RevocationStale

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

#: What identifies one version of a file without reading it:
#: (device, inode, size, mtime in ns); None when the file cannot be stat'ed.
_Signature = tuple[int, int, int, int] | None
#: Larger than any list a federation publishes (a million entries is ~40 MB):
#: a file past it is refused unread rather than read into memory.
MAX_CRL_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Revocation:
    """One entry of the list: ``reason`` is a :class:`x509.ReasonFlags` name
    (``key_compromise``), or None when the CRL gives none."""

    serial: int
    revoked_at: dt.datetime
    reason: str | None


@dataclass(frozen=True)
class _Snapshot:
    """One list as taken: never changed, replaced whole (so readers need no lock)."""

    signature: _Signature
    digest: bytes  # sha256 of the CRL's DER: the same list published again is no news
    ca_key: bytes  # the signing CA's public key (DER): numbers only compare within one CA
    number: int | None
    this_update: dt.datetime
    next_update: dt.datetime
    revoked: Mapping[int, Revocation]


class _BadList(ConfigError):
    """A file that cannot be taken; ``signature`` is the version of it that was read."""

    def __init__(self, message: str, signature: _Signature) -> None:
        super().__init__(message)
        self.signature = signature


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RevocationList:
    """The federation CRL in ``crl_path``, checked against the CA in ``ca_path``.

    Thread safe: ``check`` reads an immutable snapshot, and only a changed
    file takes the lock (to read it once, whichever thread noticed first).
    ``clock`` returns an aware UTC datetime (tests inject one).
    """

    def __init__(
        self,
        crl_path: Path,
        ca_path: Path,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self.crl_path = Path(crl_path)
        self.ca_path = Path(ca_path)
        self._clock = clock or _utc_now
        self._on_problem = on_problem
        self._lock = threading.Lock()
        #: One sentence per bad file met after start (the list in force stayed).
        self.problems: list[str] = []
        # Replaced whole, never changed in place: the hot path reads it unlocked.
        self._rejected: frozenset[_Signature] = frozenset()
        self._snapshot = _read_list(self.crl_path, self.ca_path)

    # ------------------------------------------------------------------ checking

    def check(self, cert: x509.Certificate, *, allow_stale: bool = False) -> None:
        """Raise if ``cert`` may not be used now.

        :class:`CertificateRevoked` if its serial is on the list;
        :class:`RevocationStale` if the list is past its next update (unless
        ``allow_stale``). Serials are the CA's: the list covers certificates
        of the federation CA, which TLS has already checked ``cert`` chains to.
        """
        self.check_serial(cert.serial_number, allow_stale=allow_stale)

    def check_serial(self, serial: int, *, allow_stale: bool = False) -> None:
        """:meth:`check` for a caller that already holds the serial number."""
        snapshot = self._current()
        revocation = snapshot.revoked.get(serial)
        if revocation is not None:
            raise CertificateRevoked(serial, revocation.revoked_at, revocation.reason)
        if not allow_stale and self._clock() > snapshot.next_update:
            raise RevocationStale(snapshot.next_update)

    def is_revoked(self, serial: int) -> bool:
        return serial in self._current().revoked

    def revocation(self, serial: int) -> Revocation | None:
        return self._current().revoked.get(serial)

    def is_stale(self) -> bool:
        return self._clock() > self._current().next_update

    @property
    def number(self) -> int | None:
        """The CRL number (None if the list carries none)."""
        return self._current().number

    @property
    def this_update(self) -> dt.datetime:
        return self._current().this_update

    @property
    def next_update(self) -> dt.datetime:
        return self._current().next_update

    @property
    def revoked_serials(self) -> frozenset[int]:
        return frozenset(self._current().revoked)

    def summary(self) -> dict[str, Any]:
        """What a reload record says of the list in force, from one snapshot."""
        snapshot = self._current()
        return {
            "crl_number": snapshot.number,
            "next_update": snapshot.next_update.isoformat(),
            "revoked": len(snapshot.revoked),
        }

    # ------------------------------------------------------------------ reloading

    def reload(self) -> bool:
        """Read the file now (on SIGHUP): True if a new list was taken.

        A bad file raises :class:`ConfigError` and the list in force stays;
        the same file published again (same content) is not a new list.
        """
        with self._lock:
            try:
                return self._take(_read_list(self.crl_path, self.ca_path))
            except _BadList as bad:
                refused, problem = str(bad), self._reject(bad)
        self._report(problem)
        raise ConfigError(refused)

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        signature = _signature(self.crl_path)
        if signature == snapshot.signature or signature in self._rejected:
            return snapshot
        problem = None
        with self._lock:
            if _signature(self.crl_path) not in {self._snapshot.signature, *self._rejected}:
                try:
                    self._take(_read_list(self.crl_path, self.ca_path))
                except _BadList as bad:
                    problem = self._reject(bad)
            snapshot = self._snapshot
        self._report(problem)
        return snapshot

    def _take(self, new: _Snapshot) -> bool:
        """Put ``new`` in force (under the lock); False if it is the list in force."""
        old = self._snapshot
        if new.digest == old.digest:
            self._snapshot = new  # same list, new file: remember its signature
            return False
        if (
            new.ca_key == old.ca_key
            and new.number is not None
            and old.number is not None
            and new.number <= old.number
        ):
            raise _BadList(
                f"{self.crl_path} is CRL number {new.number}, not newer than number "
                f"{old.number} in force: an old list is not taken back",
                new.signature,
            )
        self._snapshot = new
        self._rejected = frozenset()
        log.info(
            "revocation list %s taken: number %s, %d revoked, next update %s",
            self.crl_path,
            new.number,
            len(new.revoked),
            f"{new.next_update:%Y-%m-%d %H:%M:%S}Z",
        )
        return True

    def _reject(self, bad: _BadList) -> str | None:
        """Remember a bad file (under the lock); its problem the first time only."""
        if bad.signature in self._rejected:
            return None
        self._rejected = self._rejected | {bad.signature}
        problem = f"{bad}; the revocation list in force stays (number {self._snapshot.number})"
        self.problems.append(problem)
        log.warning("%s", problem)
        return problem

    def _report(self, problem: str | None) -> None:
        # Outside the lock: the callback may well ask this list something.
        if problem is not None and self._on_problem is not None:
            self._on_problem(problem)


# --------------------------------------------------------------------------- reading


def _signature(path: Path) -> _Signature:
    try:
        return _stat_signature(os.stat(path))
    except OSError:
        return None


def _stat_signature(st: os.stat_result) -> _Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read_list(crl_path: Path, ca_path: Path) -> _Snapshot:
    """Read and verify one CRL file, or raise :class:`_BadList`."""
    try:
        # The signature of the bytes read, not of whatever the path names later.
        with open(crl_path, "rb") as handle:
            signature = _stat_signature(os.fstat(handle.fileno()))
            data = handle.read(MAX_CRL_BYTES + 1)
    except OSError as exc:
        raise _BadList(
            f"cannot read the revocation list {crl_path}: {exc.strerror} "
            "(`accord certs crl` publishes one)",
            None,
        ) from exc
    if len(data) > MAX_CRL_BYTES:
        raise _BadList(f"{crl_path} is larger than {MAX_CRL_BYTES} bytes", signature)
    try:
        return _verified(data, crl_path, ca_path, signature)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # cryptography parses extensions and entries lazily: a malformed one
        # surfaces here, and must not reach a caller of check().
        raise _BadList(
            f"{crl_path} is not an X.509 revocation list (PEM or DER) it can read", signature
        ) from exc


def _verified(data: bytes, crl_path: Path, ca_path: Path, signature: _Signature) -> _Snapshot:
    if data.lstrip().startswith(b"-----BEGIN"):
        crl = x509.load_pem_x509_crl(data)
    else:
        crl = x509.load_der_x509_crl(data)
    ca = _signing_ca(crl, ca_path, crl_path, signature)
    next_update = crl.next_update_utc
    if next_update is None or next_update <= crl.last_update_utc:
        raise _BadList(f"{crl_path} has no next-update time after its this-update time", signature)
    if _has(crl, x509.DeltaCRLIndicator):
        raise _BadList(f"{crl_path} is a delta CRL, not a full revocation list", signature)
    number = None
    if _has(crl, x509.CRLNumber):
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    revoked = {
        entry.serial_number: Revocation(
            entry.serial_number, entry.revocation_date_utc, _reason(entry)
        )
        for entry in crl
    }
    return _Snapshot(
        signature=signature,
        digest=hashlib.sha256(crl.public_bytes(serialization.Encoding.DER)).digest(),
        ca_key=ca.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        number=number,
        this_update=crl.last_update_utc,
        next_update=next_update,
        revoked=revoked,
    )


def _signing_ca(
    crl: x509.CertificateRevocationList, ca_path: Path, crl_path: Path, signature: _Signature
) -> x509.Certificate:
    try:
        cas = x509.load_pem_x509_certificates(ca_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise _BadList(f"cannot read the federation CA {ca_path}", signature) from exc
    for ca in cas:
        if ca.subject == crl.issuer and _signed_by(crl, ca):
            return ca
    raise _BadList(f"{crl_path} is not signed by the federation CA in {ca_path}", signature)


def _signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError, UnsupportedAlgorithm):  # a key no CRL is signed with
        return False


def _has(crl: x509.CertificateRevocationList, kind: type[x509.ExtensionType]) -> bool:
    try:
        crl.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return False
    return True


def _reason(entry: x509.RevokedCertificate) -> str | None:
    try:
        flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None
    return None if flag is x509.ReasonFlags.unspecified else flag.name
