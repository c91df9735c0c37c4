"""The console's ASGI application: routes, sessions, CSRF and headers."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asgi_csrf import asgi_csrf
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from app.console import aggregate, auth, people, workbench
from app.console.auth import oauth_for
from app.console.pages import gate
from app.console.security import SecurityHeaders
from app.console.throttle import SigninThrottle
from app.console.users import LocalUsers

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import ASGIApp

    from app.console.config import ConsoleConfig

SESSION_COOKIE = "accord_console"
CSRF_COOKIE = "accord_csrf"


async def home(request: Request) -> Response:
    person = gate(request)
    if isinstance(person, Response):
        return person
    first = "/aggregate" if person.get("aggregate_only") == "yes" else "/search"
    return RedirectResponse(first, status_code=303)


async def healthz(request: Request) -> Response:
    return Response("ok\n", media_type="text/plain")


def create_app(config: ConsoleConfig, **oidc_client_kwargs: Any) -> ASGIApp:
    """The console for ``config``; ``oidc_client_kwargs`` reach Authlib's
    HTTP client (a test's transport to its in-test identity provider)."""
    routes = [
        Route("/", home, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        *auth.ROUTES,
        *people.ROUTES,
        *workbench.ROUTES,
        *aggregate.ROUTES,
        Mount("/static", StaticFiles(directory=Path(__file__).with_name("static")), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=config.secret,
                session_cookie=SESSION_COOKIE,
                # renewed by each response: an idle session expires
                max_age=config.idle_timeout_s,
                same_site="strict",
                https_only=True,  # Secure; browsers accept it from http://localhost too
            ),
        ],
    )
    app.state.config = config
    app.state.users = LocalUsers.load(config.users_file) if config.users_file else None
    app.state.signin_throttle = SigninThrottle()
    app.state.oauth = oauth_for(config.oidc, **oidc_client_kwargs) if config.oidc else None
    protected = asgi_csrf(
        app,
        signing_secret=config.secret,
        cookie_name=CSRF_COOKIE,
        always_set_cookie=True,
        cookie_secure=True,
        cookie_samesite="Strict",
        # checked even without cookies: no sign-in forged from another site
        always_protect={
            r.path for r in routes if isinstance(r, Route) and "POST" in (r.methods or ())
        },
    )
    return SecurityHeaders(protected)


def random_secret() -> str:
    """A signing secret for one run: sessions end when the console restarts."""
    return secrets.token_urlsafe(32)
