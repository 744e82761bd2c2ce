"""Per-exchange bookkeeping under the gateway client's urllib3 pools (internal to gateway.py).

Two facts about one request/answer exchange are not available from requests or urllib3:

- **Was any byte of the request sent?** Only then may the gateway have acted on it. The
  connections below connect first, then mark the exchange as sent just before writing, so a
  refused connection or a failed TLS handshake is known not to have reached the gateway.
- **A total deadline.** urllib3's read timeout applies to each socket read, and the status line,
  headers and body are read through a buffered file that loops over many reads. The answer is
  therefore read through :class:`DeadlineSocket`, which gives every read at most what is left of
  the exchange's deadline (and never more than the read timeout).

The current exchange travels in a :class:`contextvars.ContextVar`, which is private to each
thread and to each greenlet, so one client can serve many threads or greenlets at once.
"""

from __future__ import annotations

import http.client
import io
import socket
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


@dataclass
class Exchange:
    """One request/answer exchange: its deadline (``time.monotonic()`` seconds) and progress."""

    deadline: float
    #: True once writing the request began: from then on the gateway may have received it.
    sent: bool = False

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once past)."""
        return self.deadline - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


#: The exchange in progress in this thread or greenlet, set by ``GatewayClient.post``.
CURRENT: ContextVar[Exchange | None] = ContextVar("unsign_gateway_exchange", default=None)


class DeadlineSocket:
    """A view of a connected socket whose reads all end by the exchange's deadline.

    Only reading goes through the view; everything else is delegated to the real socket, which
    the connection keeps owning (its timeout is reset by urllib3 before each use).
    """

    def __init__(self, sock: socket.socket, exchange: Exchange) -> None:
        self._sock = sock
        self._exchange = exchange
        self._per_read_seconds = sock.gettimeout()

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        """What ``socket.makefile('rb')`` does, with this view as the raw source."""
        raw = socket.SocketIO(self, "rb")  # type: ignore[arg-type]
        self._sock._io_refs += 1  # type: ignore[attr-defined]  # as socket.makefile does
        return io.BufferedReader(raw)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        left = self._exchange.remaining()
        if left <= 0:
            raise TimeoutError("total deadline of the exchange reached")
        per_read = self._per_read_seconds
        self._sock.settimeout(left if per_read is None else min(per_read, left))
        return self._sock.recv_into(buffer, nbytes, flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class DeadlineResponse(http.client.HTTPResponse):
    """``http.client``'s response, reading through a :class:`DeadlineSocket` when in an
    exchange."""

    def __init__(self, sock: Any, debuglevel: int = 0, method: str | None = None,
                 url: str | None = None) -> None:
        exchange = CURRENT.get()
        if exchange is not None:
            sock = DeadlineSocket(sock, exchange)
        super().__init__(sock, debuglevel, method=method, url=url)


class _ExchangeAware:
    """Mixin for urllib3 connections: connect first, then mark the exchange as sent."""

    response_class = DeadlineResponse

    def request(self, *args: Any, **kwargs: Any) -> None:
        exchange = CURRENT.get()
        if exchange is not None:
            if self.sock is None:  # type: ignore[attr-defined]  # plain HTTP connects lazily
                self.connect()  # type: ignore[attr-defined]
            exchange.sent = True
        super().request(*args, **kwargs)  # type: ignore[misc]


class ExchangeHTTPConnection(_ExchangeAware, HTTPConnection):  # type: ignore[misc]
    """Plain HTTP (sandbox only: the emulator on a loopback address)."""


class ExchangeHTTPSConnection(_ExchangeAware, HTTPSConnection):  # type: ignore[misc]
    """HTTPS with certificate verification, as urllib3 does it."""


class ExchangeHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = ExchangeHTTPConnection


class ExchangeHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = ExchangeHTTPSConnection


#: For ``PoolManager.pool_classes_by_scheme``.
POOL_CLASSES = {"http": ExchangeHTTPConnectionPool, "https": ExchangeHTTPSConnectionPool}
