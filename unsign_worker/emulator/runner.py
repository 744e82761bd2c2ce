"""Running the emulator: in the foreground (the CLI) or in a background thread (tests, demo).

:func:`serve_forever` runs until SIGINT or SIGTERM. :class:`EmulatorThread` starts a server on
its own event loop in a daemon thread, so synchronous code (pytest, the demo) can use it over
real HTTP on 127.0.0.1 and stop it cleanly. Both serve HTTPS when given an ``ssl_context``
(:func:`~unsign_worker.emulator.tls.server_ssl_context`); their URLs then name the host
``localhost`` when bound where that name leads (:func:`server_base_url`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from aiohttp import web

from unsign_worker.emulator.loopback import reached_by_localhost
from unsign_worker.emulator.server import ADMIN_PREFIX, GATEWAY_PATH, start_server
from unsign_worker.emulator.state import EmulatorState

T = TypeVar("T")
#: How long start() and stop() wait for the server thread, seconds.
THREAD_TIMEOUT_SECONDS = 15.0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def server_base_url(host: str, port: int, *, tls: bool) -> str:
    """``http://host:port``; with ``tls``, ``https://`` and the host ``localhost`` when bound
    where that name leads (the sandbox certificate names it, and the worker refuses an IP
    literal outside sandbox mode)."""
    if tls and reached_by_localhost(host):
        host = "localhost"
    return f"{'https' if tls else 'http'}://{_url_host(host)}:{port}"


def install_uvloop() -> bool:
    """Use uvloop for new event loops if it is installed; True if it is."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def serve_forever(state: EmulatorState, *, host: str, port: int, public: bool = False,
                  on_ready: Callable[[str], None] | None = None,
                  ssl_context: ssl.SSLContext | None = None) -> None:
    """Serve until SIGINT/SIGTERM (HTTPS with ``ssl_context``); ``on_ready(gateway_url)`` is
    called once listening.

    Raises:
        EmulatorConfigError: see :func:`~unsign_worker.emulator.server.start_server`.
    """
    async def main() -> None:
        runner, bound = await start_server(state, host=host, port=port, public=public,
                                           ssl_context=ssl_context)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            if on_ready is not None:
                on_ready(server_base_url(host, bound, tls=ssl_context is not None) + GATEWAY_PATH)
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


class EmulatorThread:
    """An emulator served from a background thread on 127.0.0.1 (or ``host``), over HTTPS when
    given an ``ssl_context``."""

    def __init__(self, state: EmulatorState, *, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.state = state
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.BaseRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port``, or ``https://localhost:port`` over TLS on 127.0.0.1 (see
        :func:`server_base_url`); the admin API lives under ``/_emulator/``."""
        return server_base_url(self.host, self.port, tls=self.ssl_context is not None)

    @property
    def url(self) -> str:
        """The gateway URL to configure the worker with."""
        return self.base_url + GATEWAY_PATH

    @property
    def admin_url(self) -> str:
        return self.base_url + ADMIN_PREFIX

    def start(self) -> EmulatorThread:
        """Start serving; returns once the socket listens. Raises: ConfigError, TimeoutError."""
        ready: Future[int] = Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                runner, bound = loop.run_until_complete(
                    start_server(self.state, host=self.host, port=self.port,
                                 ssl_context=self.ssl_context))
            except BaseException as exc:  # handed to the starting thread
                ready.set_exception(exc)
                loop.close()
                return
            self._runner = runner
            ready.set_result(bound)
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="unsign-emulator", daemon=True)
        self._thread.start()
        self.port = ready.result(timeout=THREAD_TIMEOUT_SECONDS)
        return self

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (safe access to the state) and return its result."""
        if self._loop is None:
            return fn()
        result: Future[T] = Future()

        def run() -> None:
            try:
                result.set_result(fn())
            except BaseException as exc:
                result.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return result.result(timeout=THREAD_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        if self._loop is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=THREAD_TIMEOUT_SECONDS)
        self._loop = None
        self._thread = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
