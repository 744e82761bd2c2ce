"""Counting the TCP connections the emulator accepts (``connections_opened`` in its stats).

aiohttp's low-level :class:`~aiohttp.web.Server` is the protocol factory the listening socket
calls once per accepted TCP connection, before any byte is read and, over HTTPS, before the TLS
handshake (a connection whose handshake fails still counts: it was accepted). One
:class:`~aiohttp.web_protocol.RequestHandler` then serves every request of that connection, so
counting the factory's calls counts connections, not requests: a client that keeps its
connections alive opens few, one that reconnects for every request opens one per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web


class CountingServer(web.Server):
    """A :class:`aiohttp.web.Server` that calls ``on_connection()`` for every connection it
    accepts (on the server's event loop, like the request handlers)."""

    def __init__(self, handler: Any, *, on_connection: Callable[[], None],
                 **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._on_connection = on_connection

    def __call__(self) -> web.RequestHandler:
        self._on_connection()
        return super().__call__()
