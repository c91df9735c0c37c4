"""What one console serves: which partner, which broker, how people sign in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from accord.workdir import Workdir

#: Seconds a session lasts without a request (the cookie's max age, renewed by each request).
IDLE_TIMEOUT_S = 30 * 60
#: Seconds a session lasts at most from sign-in, however busy.
ABSOLUTE_TIMEOUT_S = 8 * 3600


@dataclass(frozen=True)
class OidcConfig:
    """The partner's OpenID Connect identity provider (authorization code flow)."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    #: The ID token claim recorded as the end user (printable ASCII, as the broker requires).
    user_claim: str = "preferred_username"


@dataclass(frozen=True)
class ConsoleConfig:
    partner: str
    workdir: Workdir
    #: Signs the session and CSRF cookies (random per start unless given).
    secret: str
    users_file: Path | None = None
    oidc: OidcConfig | None = None
    #: A fixed broker address; by default the work dir's (it follows a restarted broker).
    broker: str = ""
    idle_timeout_s: int = IDLE_TIMEOUT_S
    absolute_timeout_s: int = ABSOLUTE_TIMEOUT_S

    def broker_address(self) -> str:
        return self.broker or self.workdir.broker_address()
