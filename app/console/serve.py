"""Running the console: ``accord console --as PARTNER`` (uvicorn on loopback by default)."""

from __future__ import annotations

import os
import socket
import threading
from typing import TYPE_CHECKING

import uvicorn

from accord.errors import ConfigError
from app.console.config import ConsoleConfig, OidcConfig
from app.console.web import create_app, random_secret

if TYPE_CHECKING:
    from pathlib import Path

    from accord.workdir import Workdir

#: The environment names of the OpenID Connect settings (the secret never on a command line).
OIDC_ENV = {
    "issuer": "ACCORD_CONSOLE_OIDC_ISSUER",
    "client_id": "ACCORD_CONSOLE_OIDC_CLIENT_ID",
    "client_secret": "ACCORD_CONSOLE_OIDC_CLIENT_SECRET",
    "redirect_uri": "ACCORD_CONSOLE_OIDC_REDIRECT_URI",
}
SECRET_ENV = "ACCORD_CONSOLE_SECRET"  # noqa: S105 (the name of a setting)


def oidc_from_env(environ: dict[str, str] | None = None) -> OidcConfig | None:
    """The identity provider from the environment: all four settings, or none."""
    env = os.environ if environ is None else environ
    values = {k: env.get(name, "") for k, name in OIDC_ENV.items()}
    if not any(values.values()):
        return None
    missing = [OIDC_ENV[k] for k, v in values.items() if not v]
    if missing:
        raise ConfigError(f"OpenID Connect sign-in needs {', '.join(missing)} as well")
    return OidcConfig(**values)


def console_config(
    workdir: Workdir, partner: str, users_file: Path | None, broker: str = ""
) -> ConsoleConfig:
    workdir.partner_credentials(partner)  # first: a partner without a certificate is refused
    oidc = oidc_from_env()
    if users_file is None and oidc is None:
        raise ConfigError(
            "the console needs a way to sign in: --users FILE (argon2 hashes) or the "
            + ", ".join(OIDC_ENV.values())
            + " settings"
        )
    return ConsoleConfig(
        partner=partner,
        workdir=workdir,
        secret=os.environ.get(SECRET_ENV) or random_secret(),
        users_file=users_file,
        oidc=oidc,
        broker=broker,
    )


class ConsoleServer:
    """uvicorn in a thread of this process, on a socket bound before it starts
    (port 0 picks a free one), stopped by :meth:`stop`."""

    def __init__(self, config: ConsoleConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.socket = socket.create_server((host, port))
        self.port = self.socket.getsockname()[1]
        self.host = host
        self._server = uvicorn.Server(
            uvicorn.Config(
                create_app(config),
                log_level="warning",
                access_log=False,  # paths only, but nothing a person asked belongs in a log
                server_header=False,
                proxy_headers=False,
            )
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        # localhost: a browser's secure context over plain HTTP, so Secure cookies hold
        host = "localhost" if self.host in ("127.0.0.1", "::1", "localhost") else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> ConsoleServer:
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.run(sockets=[self.socket])

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.socket.close()


def run_console(
    workdir: Workdir,
    partner: str,
    users_file: Path | None,
    host: str,
    port: int,
    broker: str = "",
) -> int:
    """Serve until Ctrl-C (uvicorn handles SIGINT and SIGTERM)."""
    server = ConsoleServer(console_config(workdir, partner, users_file, broker), host, port)
    print(f"console of {partner} on {server.url}", flush=True)
    server.serve_forever()
    return 0
