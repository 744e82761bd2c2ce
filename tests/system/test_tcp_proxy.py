"""The tests' TCP proxy (tests/plugins/tcp_proxy.py) does what each mode says, against a small
echo server: forward (with latency), blackhole, reset, refuse, and back to forwarding."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.plugins.tcp_proxy import TcpProxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(1024):
                    conn.sendall(data)
            except ConnectionResetError:  # the proxy resets the connections it held
                pass

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield int(listener.getsockname()[1])
    listener.close()


def _echo(port: int, data: bytes = b"ping", timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return sock.recv(1024)


def test_forward_passes_bytes_after_the_latency(echo_port: int,
                                                tcp_proxy_factory: Callable[..., TcpProxy]):
    proxy = tcp_proxy_factory(("127.0.0.1", echo_port), latency_seconds=0.2)
    started = time.monotonic()
    assert _echo(proxy.port) == b"ping"
    assert time.monotonic() - started >= 0.4  # both ways
    assert proxy.accepted == proxy.forwarded_connections == 1


def test_a_blackhole_accepts_and_answers_nothing_then_heals(
        echo_port: int, tcp_proxy_factory: Callable[..., TcpProxy]):
    proxy = tcp_proxy_factory(("127.0.0.1", echo_port))
    idle = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    proxy.blackhole()
    with pytest.raises(TimeoutError):
        _echo(proxy.port, timeout=0.5)  # connected, then nothing
    proxy.forward()
    assert _echo(proxy.port) == b"ping"
    idle.sendall(b"still")  # a connection idle through the blackhole carries on
    assert idle.recv(1024) == b"still"
    idle.close()


def test_reset_and_refuse(echo_port: int, tcp_proxy_factory: Callable[..., TcpProxy]):
    proxy = tcp_proxy_factory(("127.0.0.1", echo_port))
    proxy.set_mode("reset")
    with pytest.raises((ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        _echo(proxy.port)
    proxy.set_mode("refuse")
    with pytest.raises(ConnectionRefusedError):
        _echo(proxy.port)
    proxy.forward()
    assert _echo(proxy.port) == b"ping"
