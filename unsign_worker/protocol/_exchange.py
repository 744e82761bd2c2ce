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

A third fact is kept per connection: when it was opened. A pool made by :func:`pool_classes`
closes a kept-alive connection that has reached its maximum age before handing it out, so the
next request connects anew and resolves the gateway's name again (the rules: no DNS cache).
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


@dataclass(eq=False)
class Exchange:
    """One request/answer exchange: its deadline (``time.monotonic()`` seconds) and progress."""

    deadline: float
    #: True once writing the request began: from then on the gateway may have received it.
    sent: bool = False
    #: the connection carrying it, once it has one
    connection: Any = None
    #: True once :meth:`abort` was called
    aborted: bool = False

    def abort(self) -> None:
        """Give up on the exchange from another thread or greenlet: its connection is shut
        down, so a read waiting for the answer fails at once instead of at its timeout."""
        self.aborted = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

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
        """Read into ``buffer`` by the deadline; ``nbytes`` 0 means as much as fits."""
        left = self._exchange.remaining()
        if left <= 0:
            raise TimeoutError("total deadline of the exchange reached")
        per_read = self._per_read_seconds
        self._sock.settimeout(left if per_read is None else min(per_read, left))
        if nbytes or flags:
            return self._sock.recv_into(buffer, nbytes, flags)
        # 0 means "the whole buffer" to the standard library's sockets; gevent's SSL socket
        # reads 0 bytes for an explicit 0, which would look like the end of the answer.
        return self._sock.recv_into(buffer)

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
    """Mixin for urllib3 connections: connect first, then mark the exchange as sent; remember
    when the connection was opened."""

    response_class = DeadlineResponse
    #: ``time.monotonic()`` when the current socket was connected (None: never connected).
    connected_at: float | None = None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.connected_at = time.monotonic()

    def request(self, *args: Any, **kwargs: Any) -> None:
        exchange = CURRENT.get()
        if exchange is not None:
            if self.sock is None:  # type: ignore[attr-defined]  # plain HTTP connects lazily
                self.connect()  # type: ignore[attr-defined]
            exchange.connection = self
            exchange.sent = True
        super().request(*args, **kwargs)  # type: ignore[misc]


class ExchangeHTTPConnection(_ExchangeAware, HTTPConnection):  # type: ignore[misc]
    """Plain HTTP (sandbox only: the emulator on a loopback address)."""


class ExchangeHTTPSConnection(_ExchangeAware, HTTPSConnection):  # type: ignore[misc]
    """HTTPS with certificate verification, as urllib3 does it."""


class _AgedPool:
    """Mixin for urllib3 pools: a connection at its maximum age is closed before reuse; in a
    blocking pool, waiting for a free connection ends by the exchange's deadline."""

    #: Seconds a connection may be reused after it was opened; 0: no limit.
    max_connection_age_seconds: float = 0.0

    def _get_conn(self, timeout: float | None = None) -> Any:
        exchange = CURRENT.get()
        if timeout is None and exchange is not None:  # requests never passes a pool timeout
            timeout = max(exchange.remaining(), 0.001)
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        limit = self.max_connection_age_seconds
        opened = getattr(conn, "connected_at", None)
        if (limit and opened is not None and not conn.is_closed
                and time.monotonic() - opened >= limit):
            conn.close()  # reconnected (and resolved again) by the request that takes it
        return conn


class ExchangeHTTPConnectionPool(_AgedPool, HTTPConnectionPool):
    ConnectionCls = ExchangeHTTPConnection


class ExchangeHTTPSConnectionPool(_AgedPool, HTTPSConnectionPool):
    ConnectionCls = ExchangeHTTPSConnection


def pool_classes(max_connection_age_seconds: float) -> dict[str, type]:
    """Pool classes by scheme (for ``PoolManager.pool_classes_by_scheme``) whose connections
    are closed before reuse once ``max_connection_age_seconds`` old (0: never)."""
    age = {"max_connection_age_seconds": float(max_connection_age_seconds)}
    return {"http": type("AgedHTTPConnectionPool", (ExchangeHTTPConnectionPool,), age),
            "https": type("AgedHTTPSConnectionPool", (ExchangeHTTPSConnectionPool,), age)}
