"""The work dir (default ``./.accord``): certificates, data, run files, logs.

.accord/
  certs/      federation CA and every hop's certificate (certs.PkiLayout)
  data/       the embedded sources' SQLite files
  run/        addresses of running servers (broker.addr, adapter-bc.addr)
  logs/       logs of processes started by `accord demo`
  audit/      the broker's audit trail (`accord audit verify`)
    adapter-CODE/  each adapter's own trail of the scans it served
  privacy/    ledger.sqlite3: privacy budget spent per partner and the noisy
              draws released (differentially private roles, broker/budget.py)
  audit-key.pin  the public key the trail is verified against, pinned the
              first time the broker signed with its key (outside audit/)
  audit-key-adapter-CODE.pin  the same, for each adapter's trail
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from accord.errors import ConfigError
from accord.pki import PkiLayout

ROOT = Path(__file__).resolve().parent.parent


def shipped(name: str) -> Path:
    """The repository's top-level folder ``name`` (``policies`` or ``deploy``).

    An installed wheel carries a copy as package data, ``accord/_data/NAME``
    (setup.py puts it there); a checkout, or an editable install of one, has
    no copy and the folder is read in place.
    """
    data = resources.files("accord") / "_data" / name
    if isinstance(data, Path) and data.is_dir():
        return data
    return ROOT / name


DEFAULT_FEDERATION = shipped("deploy") / "federation.yaml"
DEFAULT_POLICIES = shipped("policies")


@dataclass(frozen=True)
class Workdir:
    path: Path

    @property
    def pki(self) -> PkiLayout:
        return PkiLayout(self.path / "certs")

    @property
    def run(self) -> Path:
        return self.path / "run"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def audit_dir(self) -> Path:
        """The broker's audit trail (hash-chained JSON lines, signed checkpoints)."""
        return self.path / "audit"

    def audit_key(self) -> Path:
        """The broker's Ed25519 key for signing audit checkpoints."""
        return self.path / "certs" / "audit.key"

    def audit_key_pin(self) -> Path:
        """The audit signing key's public half, pinned at first use: what
        ``accord audit verify`` trusts when no ``--public-key`` is given."""
        return self.path / "audit-key.pin"

    def adapter_audit_dir(self, source: str) -> Path:
        """The trail adapter ``source`` keeps of the scans it served."""
        return self.audit_dir() / f"adapter-{source.lower()}"

    def adapter_audit_key(self, source: str) -> Path:
        """The Ed25519 key that signs adapter ``source``'s checkpoints."""
        return self.path / "certs" / f"audit-adapter-{source.lower()}.key"

    def adapter_audit_key_pin(self, source: str) -> Path:
        """Adapter ``source``'s audit public key, pinned at first use."""
        return self.path / f"audit-key-adapter-{source.lower()}.pin"

    def adapter_audit_sources(self) -> list[str]:
        """The (lower-case) codes of the adapters that keep a trail here."""
        try:
            names = sorted(p.name for p in self.audit_dir().iterdir() if p.is_dir())
        except FileNotFoundError:
            return []
        return [n.removeprefix("adapter-") for n in names if n.startswith("adapter-")]

    def privacy_ledger(self) -> Path:
        """The privacy budget spent per partner and the draws released (SQLite)."""
        return self.path / "privacy" / "ledger.sqlite3"

    def mask_secret_file(self) -> Path:
        """The broker's secret for keyed-hash masks (per-partner keys derive from it)."""
        return self.path / "certs" / "mask.secret"

    def mask_secret(self) -> bytes:
        path = self.mask_secret_file()
        try:
            secret = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the mask secret {path}: {exc.strerror}; run `accord certs init`"
            ) from exc
        if len(secret) < 32:
            raise ConfigError(f"the mask secret {path} is shorter than 32 bytes")
        return secret

    def broker_address_file(self) -> Path:
        return self.run / "broker.addr"

    def broker_flight_address_file(self) -> Path:
        """Where the broker writes the HOST:PORT of its Flight SQL endpoint."""
        return self.run / "broker-flight.addr"

    def adapter_address_file(self, source: str) -> Path:
        return self.run / f"adapter-{source.lower()}.addr"

    def metrics_address_file(self, component: str) -> Path:
        """Where ``broker`` or ``adapter-CODE`` writes the HOST:PORT of its /metrics."""
        return self.run / f"{component.lower()}-metrics.addr"

    def supervisor_state_file(self) -> Path:
        """What ``accord demo --serve`` supervises (``accord status`` reads it)."""
        return self.run / "federation.json"

    def prometheus_targets_dir(self) -> Path:
        """Prometheus file-based discovery of the running federation's /metrics:
        ``broker.json`` and ``adapters.json`` (see deploy/prometheus.yml)."""
        return self.run / "prometheus"

    def broker_address(self) -> str:
        path = self.broker_address_file()
        if not path.is_file():
            raise ConfigError(
                f"no broker is running for work dir {self.path} (no {path}); "
                "start one with `accord demo --serve` or pass --broker HOST:PORT"
            )
        return path.read_text().strip()

    def partners(self) -> list[str]:
        """The partners whose certificate and key are in this work dir."""
        directory = self.pki.directory
        if not directory.is_dir():
            return []
        stems = (p.stem.removeprefix("partner-") for p in directory.glob("partner-*.pem"))
        return sorted(s for s in stems if (directory / f"partner-{s}.key").is_file())

    def partner_credentials(self, name: str) -> tuple[Path, Path, Path]:
        """(CA, certificate, key) for acting as partner ``name``; a name that
        has none is refused naming those that do, and the closest."""
        cert, key = self.pki.partner(name)
        if cert.is_file() and key.is_file():
            return self.pki.ca_cert(), cert, key
        known = self.partners()
        if not known:
            raise ConfigError(
                f"no partner certificates in {self.pki.directory}: create them with "
                "`accord certs init` (partners come from policies/partners.yaml), "
                "or give --workdir the work dir that has them"
            )
        close = difflib.get_close_matches(name, known, n=1)
        guess = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(
            f"no certificate for partner {name!r} in {self.pki.directory}; {guess}"
            f"known partners: {', '.join(known)}. A new partner is added to "
            "policies/partners.yaml and given a certificate with "
            f"`accord certs issue --kind partner --name {name}`"
        )


def write_text_atomically(path: Path, text: str) -> None:
    """Writes ``text`` so that readers (a parent process waiting for an
    address, Prometheus reading targets) never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
