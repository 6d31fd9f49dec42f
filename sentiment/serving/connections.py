"""Connections the server will not keep: uvicorn's HTTP protocol with a deadline for a request's head, and its limits set.

uvicorn closes a keep-alive connection left idle (``timeout_keep_alive``) and answers 503 past
``limit_concurrency`` connections, but it waits for ever on a request whose head never completes
(``GET / HTTP/1.1`` and nothing more), so enough such clients use up the file descriptors. Here its
own protocol class gets the deadline it lacks: a connection that has not sent a whole request head
within ``head_seconds`` of connecting (or of starting its next request) is closed, by the same
handler uvicorn closes idle connections with. A body that stalls is the body reader's to time out
(``routes.BodyLimit``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


def timed_protocol(head_seconds: float) -> type:
    """uvicorn's httptools protocol (h11's when httptools is missing) closing a connection whose request head is late."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # pragma: no cover - httptools is a KServe dependency
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    class TimedHeadProtocol(Base):
        """Close the connection when a request head does not arrive whole in time."""

        head_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:  # noqa: D401 - uvicorn's hook
            super().connection_made(transport)
            self._start_head_deadline()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self.head_deadline is None:
                self._start_head_deadline()

        def on_headers_complete(self) -> None:
            self._cancel_head_deadline()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_deadline()
            super().connection_lost(exc)

        def _start_head_deadline(self) -> None:
            self.head_deadline = self.loop.call_later(head_seconds, self._head_too_late)

        def _cancel_head_deadline(self) -> None:
            if self.head_deadline is not None:
                self.head_deadline.cancel()
                self.head_deadline = None

        def _head_too_late(self) -> None:
            self.head_deadline = None
            log.debug("closed %s: no whole request head within %g s", self.client, head_seconds)
            self.timeout_keep_alive_handler()

    return TimedHeadProtocol


def limit(config: Any, head_seconds: float, max_connections: int, keep_alive_seconds: int = 5) -> None:
    """Set a uvicorn ``Config``'s connection limits: the head deadline, at most ``max_connections`` open (503 past it)."""
    config.http = timed_protocol(head_seconds)
    config.limit_concurrency = max_connections
    config.timeout_keep_alive = keep_alive_seconds
