"""Headers on every console response: no caching, a strict CSP, no framing,
no referrer. A response that set its own CSP (the bail brief, whose inline
stylesheet is allowed by its hash) keeps it."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Scripts and styles from the console's own static files only: no inline script, no eval.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    # offender data must not stay in a browser's or a proxy's cache
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)


def csp_for_inline_styles(html: str) -> str:
    """A CSP allowing exactly the page's ``<style>`` blocks (by hash), no script at all."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in _STYLE.findall(html)
    )
    styles = hashes or "'none'"
    return (
        f"default-src 'none'; style-src {styles}; img-src data:; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )


def _http_only(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    """Every cookie HttpOnly: the CSRF cookie too (its token reaches pages in their markup)."""
    if name.lower() == b"set-cookie" and b"httponly" not in value.lower():
        value += b"; HttpOnly"
    return name, value


class SecurityHeaders:
    """Pure ASGI middleware (no buffering: a download streams through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {name for name, _ in HEADERS}
                ]
                headers = [_http_only(k, v) for k, v in headers] + list(HEADERS)
                if not any(k.lower() == b"content-security-policy" for k, _ in headers):
                    headers.append((b"content-security-policy", CSP.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
