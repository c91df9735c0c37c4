"""Signing in and out, and the purpose of the session.

Local users (``app.console.users``) sign in with a password; with an
identity provider configured, people sign in through OpenID Connect
(authorization code flow, Authlib, the state and nonce kept in the session
cookie). Either way the session holds the person's name and nothing of what
they read.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from authlib.integrations.base_client import OAuthError
from authlib.integrations.starlette_client import OAuth
from joserfc.errors import JoseError
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from accord.fields import normalize
from app.console import broker_calls
from app.console.pages import config_of, gate, off_loop, render, signed_in

if TYPE_CHECKING:
    from starlette.requests import Request

    from app.console.config import OidcConfig
    from app.console.throttle import SigninThrottle
    from app.console.users import LocalUsers

log = logging.getLogger("accord.console")

#: Longest purpose or case reference the form takes (the broker bounds them too).
MAX_FIELD = 100


def oauth_for(oidc: OidcConfig, **client_kwargs: object) -> OAuth:
    """Authlib's client of the partner's identity provider, from its discovery document."""
    oauth = OAuth()
    oauth.register(
        name="partner",
        client_id=oidc.client_id,
        client_secret=oidc.client_secret,
        server_metadata_url=oidc.issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email", **client_kwargs},
    )
    return oauth


def _start(request: Request, user: str, display: str, how: str) -> Response:
    request.session.clear()  # a fresh session at sign-in: nothing carried over
    request.session.update(
        {"user": user, "display": display, "auth": how, "signed_in": str(time.time())}
    )
    log.info("console sign-in", extra={"end_user": user, "auth": how})
    return RedirectResponse("/session", status_code=303)


def _signin(request: Request, error: str = "", status_code: int = 200) -> Response:
    config = config_of(request)
    return render(
        request,
        "signin.html.j2",
        status_code=status_code,
        local=config.users_file is not None,
        oidc=config.oidc is not None,
        error=error,
    )


async def signin_page(request: Request) -> Response:
    if signed_in(request) is not None:
        return RedirectResponse("/", status_code=303)
    return _signin(request)


async def signin(request: Request) -> Response:
    form = await request.form()
    name, password = str(form.get("username", "")), str(form.get("password", ""))
    users: LocalUsers | None = request.app.state.users
    throttle: SigninThrottle = request.app.state.signin_throttle
    client = request.client.host if request.client else ""
    if wait := throttle.wait_s(name, client):
        minutes = max(1, round(wait / 60))
        return _signin(request, f"Too many failed sign-ins: try again in about {minutes} min.", 429)
    # argon2 takes tens of milliseconds of CPU on purpose: not on the event loop
    user = await off_loop(lambda: users.verify(name, password)) if users is not None else None
    if user is None:
        throttle.failed(name, client)
        log.info("console sign-in refused", extra={"end_user": name[:MAX_FIELD]})
        return _signin(request, "Unknown user or wrong password.", 401)
    return _start(request, user.name, user.display, "local")


async def oidc_login(request: Request) -> Response:
    config = config_of(request)
    oauth: OAuth | None = request.app.state.oauth
    if oauth is None or config.oidc is None:
        return RedirectResponse("/signin", status_code=303)
    response: Response = await oauth.partner.authorize_redirect(request, config.oidc.redirect_uri)
    return response


async def oidc_callback(request: Request) -> Response:
    config = config_of(request)
    oauth: OAuth | None = request.app.state.oauth
    if oauth is None or config.oidc is None:
        return RedirectResponse("/signin", status_code=303)
    try:
        token = await oauth.partner.authorize_access_token(request)
    except (OAuthError, JoseError) as exc:  # a forged state, a bad or expired ID token
        log.warning("console OIDC sign-in refused: %s", type(exc).__name__)
        return _signin(request, "The identity provider did not sign you in.", 401)
    claims = token.get("userinfo") or {}
    user = str(claims.get(config.oidc.user_claim) or claims.get("email") or claims.get("sub", ""))
    if not user:
        return _signin(request, "The identity provider named no user.", 401)
    return _start(request, user, str(claims.get("name") or user), "oidc")


async def signout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/signin", status_code=303)


async def session_page(request: Request) -> Response:
    person = gate(request, purpose=False)
    if isinstance(person, Response):
        return person
    config = config_of(request)
    error = ""
    try:
        with broker_calls.client(config, person) as broker:
            catalog = await off_loop(broker.catalog)
    except broker_calls.BROKER_ERRORS as exc:
        error, catalog = broker_calls.failure_text(exc), None
    return render(request, "session.html.j2", catalog=catalog, error=error)


async def choose_session(request: Request) -> Response:
    person = gate(request, purpose=False)
    if isinstance(person, Response):
        return person
    form = await request.form()
    purpose = normalize(str(form.get("purpose", "")))[:MAX_FIELD]
    case_ref = normalize(str(form.get("case_ref", "")))[:MAX_FIELD]
    if not purpose:
        return RedirectResponse("/session", status_code=303)
    # the broker's admission judges them at every call; the console only keeps them
    aggregate_only = "yes" if form.get("aggregate_only") == "yes" else "no"  # the menu only
    request.session.update(
        {"purpose": purpose, "case_ref": case_ref, "aggregate_only": aggregate_only}
    )
    return RedirectResponse("/", status_code=303)


ROUTES = [
    Route("/signin", signin_page, methods=["GET"]),
    Route("/signin", signin, methods=["POST"]),
    Route("/oidc/login", oidc_login, methods=["GET"]),
    Route("/oidc/callback", oidc_callback, methods=["GET"]),
    Route("/signout", signout, methods=["POST"]),
    Route("/session", session_page, methods=["GET"]),
    Route("/session", choose_session, methods=["POST"]),
]
