"""What a browser could be made to send: cross-site requests and DNS rebinding refused, the page framed by no one.

TF Serving clients are untouched: ``curl -d '{"instances": [...]}'`` sends neither ``Origin`` nor a
foreign ``Host``, whatever its Content-Type. A browser sends ``Origin`` with every cross-site POST
(``fetch`` in no-cors mode and HTML forms included), so a request whose Origin is not this server is
refused, and while the server listens on loopback a ``Host`` that is not a loopback name is refused:
a page on another site that resolves its own name to 127.0.0.1 (DNS rebinding) reaches nothing.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Callable
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
# Every response: no framing (clickjacking), no MIME sniffing, and for the page only its own scripts and styles.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def is_loopback(host: str) -> bool:
    """Whether a listening address or a Host header's name (port stripped) is this machine's loopback."""
    name = host.strip().lower()
    if name.startswith("["):  # [::1]:8080
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:  # 127.0.0.1:8080, localhost:8080
        name = name.split(":", 1)[0]
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class BrowserGuard:
    """ASGI middleware: refuse a foreign Origin (403) and, on loopback, a foreign Host (403); add the security headers."""

    def __init__(self, app: Any, loopback: bool):
        self.app, self.loopback = app, loopback

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """Check the request's Origin and Host, then hand it on with the headers added to its response."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        host = headers.get(b"host", b"").decode("latin-1")
        problem = self.problem(host, headers.get(b"origin", b"").decode("latin-1"))
        if problem:
            log.info("403 %s: %s", scope.get("method"), problem)
            return await refuse(problem, send)

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def problem(self, host: str, origin: str) -> str | None:
        """Why a request is refused (None if it is not): a Host not of this machine on loopback, or a cross-site Origin."""
        if self.loopback and host and not is_loopback(host):
            return f"Host {host[:100]!r} is not this machine (the server listens on loopback only)"
        if origin and origin != "null" and urlsplit(origin).netloc.lower() != host.lower():
            return f"a cross-site request from {origin[:100]!r} (Origin is not this server)"
        if origin == "null":  # a sandboxed frame or a file:// page
            return "a request from an opaque origin (Origin: null)"
        return None


async def refuse(problem: str, send: Callable) -> None:
    """Answer 403 with a JSON error and the security headers."""
    import orjson

    body = orjson.dumps({"error": f"refused: {problem}"})
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
