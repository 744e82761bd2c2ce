"""A scripted HTTP(S) server on 127.0.0.1 for transport tests: each request runs a handler that
writes whatever bytes it likes (well-formed answers, resets, drips, truncations).

The server listens on a free port, counts accepted connections, records every request, and
stops cleanly: handlers that wait use ``server.stopping.wait(...)``, never a bare sleep.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import parse_qsl

#: Longest a server thread waits for anything when the test forgot to stop it, seconds.
GIVE_UP_SECONDS = 60.0


@dataclass
class Request:
    """One request as received: request line parts, lower-cased headers, raw body bytes."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""
    connection: int = 0

    def form(self, charset: str) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("ascii"), keep_blank_values=True,
                              encoding=charset, errors="strict"))


#: A handler writes the answer on the socket; it returns False to close the connection.
Handler = Callable[["ScriptedServer", socket.socket, Request], "bool | None"]


def answer(status: int = 200, body: bytes = b"", *, headers: dict[str, str] | None = None,
           content_length: int | None = None, close: bool = False) -> bytes:
    """The bytes of an HTTP/1.1 answer; ``content_length`` may lie about ``body``."""
    head = [f"HTTP/1.1 {status} Status"]
    all_headers = {"Content-Type": "text/xml; charset=utf-8"}
    all_headers.update(headers or {})
    if "Transfer-Encoding" not in all_headers:
        all_headers["Content-Length"] = str(len(body) if content_length is None
                                            else content_length)
    if close:
        all_headers["Connection"] = "close"
    head.extend(f"{k}: {v}" for k, v in all_headers.items())
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def reset(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER with a zero timeout)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@dataclass
class ScriptedServer:
    handler: Handler
    ssl_context: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    accepted: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.1)  # the accept loop polls ``stopping``
        self.port = self._listener.getsockname()[1]
        scheme = "https" if self.ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/gateway.do"
        self._spawn(self._accept_loop)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                number = self.accepted
                self._sockets.append(sock)
            self._spawn(self._serve, sock, number)

    def _serve(self, sock: socket.socket, number: int) -> None:
        sock.settimeout(GIVE_UP_SECONDS)
        try:
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
                with self._lock:
                    self._sockets.append(sock)
            reader = sock.makefile("rb")
            while not self.stopping.is_set():
                request = _read_request(reader, number)
                if request is None:
                    break
                with self._lock:
                    self.requests.append(request)
                if self.handler(self, sock, request) is False:
                    break
        except (OSError, ValueError):
            pass  # the client went away, or a TLS handshake failed: both are test scenarios
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self.stopping.set()
        self._listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout=GIVE_UP_SECONDS)


def _read_request(reader: BinaryIO, number: int) -> Request | None:
    line = reader.readline(65537)
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (raw := reader.readline(65537)) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", "0")))
    return Request(method, target, headers, body, number)
