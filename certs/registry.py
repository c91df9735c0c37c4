"""The record of every certificate the federation CA issued: ``index.json``.

One JSON document in the PKI directory, rewritten whole and atomically (under
the directory's lock, :func:`certs.files.locked`) at each change::

    {"format": 1, "ca_fingerprint_sha256": "…", "crl_number": 4,
     "certificates": [{"serial": "…decimal…", "serial_hex": "…", "kind": "partner",
                       "common_name": "rcmp", "organization": "…",
                       "not_before": "…Z", "not_after": "…Z", "fingerprint_sha256": "…",
                       "status": "valid", "revoked_at": null, "revocation_reason": null,
                       "key_held_by_ca": true}, …]}

Serials are strings (a 159-bit number is no JSON number a reader can trust).
``status`` is ``valid``, ``superseded`` (a newer certificate of the same kind
and subject was issued; this one still works until it expires or is revoked,
so a rotation has no gap) or ``revoked`` (on the CRL). ``key_held_by_ca`` is
false for a certificate signed from a CSR: its key never left its holder.
The registry belongs to one CA: a new CA (``accord certs init --force``)
starts a new one, and the old file is kept beside it as
``index-<old CA fingerprint>.json``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from accord.errors import PkiError
from certs.ca import KINDS, _attribute
from certs.files import _write_atomic

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography import x509

    from certs.ca import Kind

Status = Literal["valid", "superseded", "revoked"]
STATUSES: tuple[Status, ...] = get_args(Status)
FORMAT = 1


@dataclass(frozen=True)
class IssuedCertificate:
    """One certificate the CA issued, and what became of it."""

    serial: int
    kind: Kind
    common_name: str
    organization: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint_sha256: str
    status: Status = "valid"
    revoked_at: dt.datetime | None = None
    revocation_reason: str | None = None
    key_held_by_ca: bool = True

    @property
    def serial_hex(self) -> str:
        return f"{self.serial:x}"

    @classmethod
    def of(
        cls, cert: x509.Certificate, kind: Kind, *, key_held_by_ca: bool = True
    ) -> IssuedCertificate:
        return cls(
            serial=cert.serial_number,
            kind=kind,
            common_name=_attribute(cert.subject, NameOID.COMMON_NAME) or "",
            organization=_attribute(cert.subject, NameOID.ORGANIZATION_NAME),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
            key_held_by_ca=key_held_by_ca,
        )

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["serial"] = str(self.serial)
        record["serial_hex"] = self.serial_hex
        for key in ("not_before", "not_after", "revoked_at"):
            record[key] = _when(record[key])
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> IssuedCertificate:
        if record["kind"] not in KINDS or record["status"] not in STATUSES:
            raise ValueError(f"unknown kind or status in {record!r}")
        revoked_at = record.get("revoked_at")
        return cls(
            serial=int(record["serial"]),
            kind=record["kind"],
            common_name=str(record["common_name"]),
            organization=record.get("organization"),
            not_before=dt.datetime.fromisoformat(record["not_before"]),
            not_after=dt.datetime.fromisoformat(record["not_after"]),
            fingerprint_sha256=str(record["fingerprint_sha256"]),
            status=record["status"],
            revoked_at=dt.datetime.fromisoformat(revoked_at) if revoked_at else None,
            revocation_reason=record.get("revocation_reason"),
            key_held_by_ca=bool(record.get("key_held_by_ca", True)),
        )


def _when(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Registry:
    """``index.json`` in memory: load it, change it, :meth:`save` it (under the lock)."""

    path: Path
    ca_fingerprint: str
    crl_number: int = 0
    certificates: list[IssuedCertificate] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, ca_fingerprint: str) -> Registry:
        """The registry of the CA with ``ca_fingerprint``: empty if there is none
        yet, or if the file there belongs to another CA (replaced on save)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path, ca_fingerprint)
        except (OSError, ValueError) as exc:
            raise PkiError(f"cannot read the certificate registry {path}: {exc}") from exc
        try:
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT}")
            if raw["ca_fingerprint_sha256"] != ca_fingerprint:
                return cls(path, ca_fingerprint)
            return cls(
                path,
                ca_fingerprint,
                int(raw["crl_number"]),
                [IssuedCertificate.from_json(r) for r in raw["certificates"]],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PkiError(
                f"the certificate registry {path} is damaged ({exc}); restore it from a backup"
            ) from exc

    def save(self) -> None:
        self._keep_another_cas_registry()
        document = {
            "format": FORMAT,
            "ca_fingerprint_sha256": self.ca_fingerprint,
            "crl_number": self.crl_number,
            "certificates": [c.to_json() for c in self.certificates],
        }
        text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
        _write_atomic(self.path, text.encode("utf-8"), mode=0o644)

    def _keep_another_cas_registry(self) -> None:
        try:
            previous = json.loads(self.path.read_text(encoding="utf-8"))
            owner = str(previous["ca_fingerprint_sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if owner != self.ca_fingerprint:
            self.path.rename(self.path.with_name(f"index-{owner[:16]}.json"))

    # ------------------------------------------------------------------ finding

    def find(self, serial: int) -> IssuedCertificate | None:
        return next((c for c in self.certificates if c.serial == serial), None)

    def latest(self, kind: Kind, common_name: str) -> IssuedCertificate | None:
        """The certificate of this kind and subject issued last (whatever its status)."""
        matching = [c for c in self.certificates if (c.kind, c.common_name) == (kind, common_name)]
        return matching[-1] if matching else None

    def revoked(self) -> list[IssuedCertificate]:
        return [c for c in self.certificates if c.status == "revoked"]

    # ------------------------------------------------------------------ changing

    def add(self, entry: IssuedCertificate) -> None:
        """Record a new certificate; the valid ones of its kind and subject
        become superseded (they keep working: rotation has no gap)."""
        if self.find(entry.serial) is not None:
            return
        self.certificates = [
            replace(c, status="superseded")
            if c.status == "valid" and (c.kind, c.common_name) == (entry.kind, entry.common_name)
            else c
            for c in self.certificates
        ]
        self.certificates.append(entry)

    def mark_revoked(self, serial: int, at: dt.datetime, reason: str | None) -> IssuedCertificate:
        for index, entry in enumerate(self.certificates):
            if entry.serial == serial:
                revoked = replace(entry, status="revoked", revoked_at=at, revocation_reason=reason)
                self.certificates[index] = revoked
                return revoked
        raise PkiError(f"no certificate with serial {serial:x} in {self.path}")


def status_now(entry: IssuedCertificate, now: dt.datetime) -> str:
    """What ``accord certs list`` shows: the status, or ``expired`` for a
    certificate no longer usable anyway."""
    if entry.status != "revoked" and entry.not_after <= now:
        return "expired"
    return cast("str", entry.status)
