"""What every page shares: the templates, the signed-in session, the
purpose chosen for it, and a broker call run off the event loop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request

    from app.console.config import ConsoleConfig

T = TypeVar("T")

TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
# autoescape is on for .j2 too: every value shown comes from data
TEMPLATES.env.autoescape = True
# a value as an (option value, label) pair
TEMPLATES.env.filters["pair"] = lambda value: (value, value)


def config_of(request: Request) -> ConsoleConfig:
    config: ConsoleConfig = request.app.state.config
    return config


def signed_in(request: Request) -> dict[str, str] | None:
    """The session's person, or None (never signed in, signed out, or expired)."""
    session = request.session
    if "user" not in session:
        return None
    started = float(session.get("signed_in", 0))
    if time.time() - started > config_of(request).absolute_timeout_s:
        session.clear()
        return None
    return {k: str(v) for k, v in session.items()}


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    config = config_of(request)
    return TEMPLATES.TemplateResponse(
        request,
        name,
        {
            "partner": config.partner,
            "person": signed_in(request),
            "csrftoken": request.scope["csrftoken"](),
            **context,
        },
        status_code=status_code,
    )


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def gate(request: Request, *, purpose: bool = True) -> dict[str, str] | Response:
    """The session, or where to go first: sign in, then choose a purpose."""
    person = signed_in(request)
    if person is None:
        return RedirectResponse("/signin", status_code=303)
    if purpose and not person.get("purpose"):
        return RedirectResponse("/session", status_code=303)
    return person


async def off_loop(call: Callable[[], T]) -> T:
    """A blocking broker call, in a worker thread."""
    return await run_in_threadpool(call)
