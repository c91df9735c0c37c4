"""The layout of a federation PKI directory: which file holds which hop's
certificate and key (``certs`` writes them; the broker, adapters and the
command line read them)::

    <dir>/ca.pem, ca.key                      the federation CA
    <dir>/broker-server.pem, .key             the broker's server cert
    <dir>/broker-client.pem, .key             the broker's client cert (to call adapters)
    <dir>/adapter-<code>.pem, .key            one server cert per adapter (code lowercased)
    <dir>/partner-<name>.pem, .key            one client cert per partner (CN = partner name;
                                              no .key when the partner sent a CSR)
    <dir>/operator.pem, .key                  the operator's client cert (CN accord-operator)
    <dir>/crl.pem                             the revocation list (accord.revocation)
    <dir>/index.json                          every certificate the CA issued (certs.registry)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from accord.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

#: Organization (O) of every certificate the federation itself runs (CA, broker,
#: adapters, operator); the CA never issues it to a partner.
FEDERATION_ORGANIZATION = "Accord Federation"
#: CN of both of the broker's certificates (server and client).
BROKER_COMMON_NAME = "accord-broker"
#: CN of the operator's client certificate (health and reflection at adapters).
OPERATOR_COMMON_NAME = "accord-operator"


def adapter_identity(source_code: str) -> str:
    """The name an adapter's certificate carries (CN and DNS SAN) unless the
    federation file names another: ``adapter-ca-csc`` for ``CA-CSC``. The broker
    dials each source under this name, so only that source's certificate passes."""
    return f"adapter-{checked_name(source_code, 'source code').lower()}"


#: Names that become part of a file name: no separators, no leading dot.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class PkiLayout:
    """Where each file of a federation PKI directory lives."""

    directory: Path

    def ca_cert(self) -> Path:
        return self.directory / "ca.pem"

    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    def broker_server(self) -> tuple[Path, Path]:
        return self._pair("broker-server")

    def broker_client(self) -> tuple[Path, Path]:
        """The broker's client certificate, presented when it calls adapters."""
        return self._pair("broker-client")

    def adapter(self, source_code: str) -> tuple[Path, Path]:
        """An adapter's server certificate, e.g. ``adapter-ca-csc.pem`` for ``CA-CSC``."""
        return self._pair(adapter_identity(source_code))

    def partner(self, name: str) -> tuple[Path, Path]:
        return self._pair(f"partner-{checked_name(name, 'partner name')}")

    def operator(self) -> tuple[Path, Path]:
        """The operator's client certificate (``accord-operator``)."""
        return self._pair("operator")

    def crl(self) -> Path:
        """The federation's certificate revocation list, signed by the CA."""
        return self.directory / "crl.pem"

    def registry(self) -> Path:
        """The record of every certificate the CA issued, and the last CRL number."""
        return self.directory / "index.json"

    def lock(self) -> Path:
        """Held while the CA changes anything, so two runs cannot interleave."""
        return self.directory / ".lock"

    def _pair(self, stem: str) -> tuple[Path, Path]:
        return self.directory / f"{stem}.pem", self.directory / f"{stem}.key"


def checked_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value) or value.endswith("."):
        raise ConfigError(
            f"invalid {what} {value!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value
