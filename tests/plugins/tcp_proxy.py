"""A userspace TCP proxy a test controls: put it on the path between a process and a server to
cut, slow or break that path alone, while other processes reach the server directly.

Modes (:meth:`TcpProxy.set_mode`, or the shortcuts):

- ``forward``: bytes pass both ways, each chunk after ``latency_seconds``;
- ``blackhole``: as a blackholed route looks from the client: connections are accepted (the
  kernel completes the TCP handshake of a listening socket) but nothing passes either way, on
  new and open connections alike; a connection that tried to send during it is reset when it
  ends, its bytes never forwarded late (its client has given up: a request held there must
  not reach the server after its client moved on); an idle one carries on;
- ``reset``: every connection, new or open, is closed with a TCP reset;
- ``refuse``: the port stops listening (connections refused); open connections are reset.

Threads only, on 127.0.0.1; :meth:`close` stops everything. Counters say what passed.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from enum import StrEnum

import pytest

from tests.plugins.ports import free_port

#: Bytes read from a socket at a time.
CHUNK_BYTES = 64 * 1024


class Mode(StrEnum):
    FORWARD = "forward"
    BLACKHOLE = "blackhole"
    RESET = "reset"
    REFUSE = "refuse"


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), not FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class TcpProxy:
    """Listens on ``127.0.0.1:port`` and forwards to ``target`` (host, port)."""

    def __init__(self, target: tuple[str, int], *, port: int = 0,
                 latency_seconds: float = 0.0) -> None:
        self.target = target
        self.port = port or free_port()
        self.latency_seconds = latency_seconds
        self.mode = Mode.FORWARD
        #: connections accepted, and connections made to the target, since start
        self.accepted = 0
        self.forwarded_connections = 0
        self._changed = threading.Condition()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._closed = False
        self._listen()

    def __repr__(self) -> str:
        return f"TcpProxy(127.0.0.1:{self.port} -> {self.target}, mode={self.mode})"

    # -- control -----------------------------------------------------------------------------

    def set_mode(self, mode: Mode | str) -> None:
        mode = Mode(mode)
        with self._changed:
            previous = self.mode
            held = list(self._open)
            if mode in (Mode.RESET, Mode.REFUSE):
                for sock in held:
                    _reset(sock)
                self._open.clear()
            self.mode = mode
            self._changed.notify_all()
        if mode is Mode.REFUSE and self._listener is not None:
            try:  # wakes the thread blocked in accept(); close() alone would leave it listening
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        elif previous is Mode.REFUSE and mode is not Mode.REFUSE:
            self._listen()

    def forward(self, latency_seconds: float | None = None) -> None:
        if latency_seconds is not None:
            self.latency_seconds = latency_seconds
        self.set_mode(Mode.FORWARD)

    def blackhole(self) -> None:
        self.set_mode(Mode.BLACKHOLE)

    def close(self) -> None:
        self._closed = True
        self.set_mode(Mode.REFUSE)

    # -- machinery ---------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(256)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True,
                         name=f"proxy-accept-{self.port}").start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed: refuse mode, or the proxy closed
                return
            self.accepted += 1
            if self.mode in (Mode.RESET, Mode.REFUSE) or self._closed:
                _reset(client)
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        if not self._wait_forwarding():
            _reset(client)
            return
        try:
            server = socket.create_connection(self.target, timeout=10)
        except OSError:
            _reset(client)
            return
        server.settimeout(None)
        self.forwarded_connections += 1
        self._track(server)
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._changed:
            self._open.add(sock)

    def _wait_forwarding(self) -> bool:
        """Hold while blackholed; False once the path is reset, refused or closed."""
        with self._changed:
            while self.mode is Mode.BLACKHOLE and not self._closed:
                self._changed.wait(0.5)
            return self.mode is Mode.FORWARD and not self._closed

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(CHUNK_BYTES)
                if not data:
                    break
                if self.mode is Mode.BLACKHOLE:  # dropped; the connection dies with the hole
                    self._wait_forwarding()
                    break
                if not self._wait_forwarding():
                    break
                if self.latency_seconds:
                    time.sleep(self.latency_seconds)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with self._changed:
                    self._open.discard(sock)
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


@pytest.fixture
def tcp_proxy_factory() -> Iterator[Callable[..., TcpProxy]]:
    """Makes :class:`TcpProxy` instances (same arguments), closed at the end of the test."""
    made: list[TcpProxy] = []

    def make(target: tuple[str, int], **options: float) -> TcpProxy:
        proxy = TcpProxy(target, **options)  # type: ignore[arg-type]
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()
