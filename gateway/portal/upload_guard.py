"""Uploads larger than the portal takes, answered with a page a person can read.

Outermost on the app, so that the API's own body limit (a problem+json 413 meant for
programs) never answers a browser. The rest of the body is read and dropped up to a
bound first: a browser that is still sending when the answer comes shows a connection
error instead of the page.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.portal import state
from gateway.portal.portal_settings import FORM_SLACK

PATH = "/portal/uploads"
# Past this much, the connection is closed rather than read to the end.
DRAIN_MAX = 64 * 1024 * 1024
PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>File too large
</title><link rel="stylesheet" href="/portal/static/portal.css"></head><body><main>
<h1>File too large</h1><p class="error" role="alert">The file is larger than the portal takes
({kb} KB). Split it into smaller files.</p><p><a href="/portal/uploads">Back to your uploads</a>
</p></main></body></html>"""


def too_large_page(limit: int) -> bytes:
    return PAGE.format(kb=limit // 1024).encode()


async def drain(receive: Receive, seen: int = 0) -> None:
    """Read what is left of a request body (up to DRAIN_MAX) and drop it."""
    more = True
    while more and seen < DRAIN_MAX:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        more = message.get("more_body", False)


class UploadGuard:
    """ASGI middleware: a POST to the upload page whose declared length is over the limit
    gets the portal's 413 page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == PATH:
            limit = state.of(scope["app"]).settings.max_upload_bytes
            declared = dict(scope.get("headers", [])).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > limit + FORM_SLACK:
                await drain(receive)
                body = too_large_page(limit)
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", b"text/html; charset=utf-8"),
                                        (b"content-length", str(len(body)).encode()),
                                        (b"cache-control", b"no-store"),
                                        (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
