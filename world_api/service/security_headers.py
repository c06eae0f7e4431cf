"""Security headers on every answer: ``X-Content-Type-Options: nosniff`` everywhere (the JSON
API too, so that no browser takes a JSON answer for a page or a script), and on the
dashboard (``/ui``, its tear sheets and assets) and the API docs pages a
Content-Security-Policy, ``X-Frame-Options: DENY`` and ``Referrer-Policy: no-referrer``.

The dashboard's policy lets it load scripts, styles, images and data only from the service
itself (``'self'``; no inline or evaluated script), never be framed, and send no Referer
(its URLs name worlds and strategies). Styles may be inline: plotly.js styles its SVG with
``style`` attributes. The docs pages (Swagger UI, ReDoc) start with an inline script, so they
get only ``frame-ancestors 'none'``.

>>> headers = dict(added("/ui/worlds/w", []))
>>> headers[b"x-content-type-options"], headers[b"x-frame-options"]
(b'nosniff', b'DENY')
>>> b"script-src 'self';" in headers[b"content-security-policy"]
True
>>> sorted(dict(added("/worlds", [])))
[b'x-content-type-options']
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""The dashboard's Content-Security-Policy."""

DOCS_CSP = "frame-ancestors 'none'"
"""The API docs pages' (``/docs``, ``/redoc``): they run an inline script of their own."""


def added(path: str, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with the security headers of an answer to ``path`` added (those it has
    already are kept)."""
    have = {name.lower() for name, _ in headers}
    extra: list[tuple[bytes, bytes]] = [(b"x-content-type-options", b"nosniff")]
    if path == "/ui" or path.startswith("/ui/"):
        csp = DASHBOARD_CSP
    elif path in ("/docs", "/redoc") or path.startswith("/docs/"):
        csp = DOCS_CSP
    else:
        csp = ""
    if csp:
        extra += [
            (b"content-security-policy", csp.encode()),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
    return [*headers, *((n, v) for n, v in extra if n not in have)]


class SecurityHeaders:
    """ASGI middleware adding :func:`added`'s headers to every HTTP answer.

    >>> SecurityHeaders(None).app is None
    True
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": added(path, list(message.get("headers", [])))}
            await send(message)

        await self.app(scope, receive, with_headers)
