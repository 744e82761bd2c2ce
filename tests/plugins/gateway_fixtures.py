"""An in-process emulator for the worker's tests, startable on a chosen port and stoppable
mid-test (a gateway outage), with its state reachable for faults and stats."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.plugins.ports import free_port
from unsign_worker.emulator.agreements import Agreement
from unsign_worker.emulator.config import build_config
from unsign_worker.emulator.faults import FaultSettings
from unsign_worker.emulator.server import start_server
from unsign_worker.emulator.state import EmulatorState

PARTNER = "2088101568338364"
KEY = "k3y0f32charsforthetestsuite00001"


def cae(agreement_id: str, n: int, **extra: Any) -> Agreement:
    """A CAE agreement reachable by customer_code ``C<n>``."""
    return Agreement(id=agreement_id, customer_code=f"C{n:05d}", type_code="BUSI0031",
                     trans_account_out=f"2088{n:012d}0156", **extra)


def partner_protocol(agreement_id: str, n: int, **extra: Any) -> Agreement:
    """A sign_protocol_with_partner agreement (biz_type 10004 + user_email)."""
    return Agreement(id=agreement_id, biz_type="10004", user_email=f"user{n}@example.com",
                     user_id=f"2088{n:012d}", **extra)


class Gateway:
    """The emulator served from a background thread's event loop."""

    def __init__(self, agreements: list[Agreement], *, port: int = 0) -> None:
        self.state = EmulatorState(build_config(partner=PARTNER, key=KEY), agreements)
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/gateway.do"

    def start(self) -> Gateway:
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._runner, _ = loop.run_until_complete(
                    start_server(self.state, host="127.0.0.1", port=self.port))
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._loop = None

    def faults(self, **knobs: Any) -> None:
        self.state.faults = FaultSettings.from_mapping(knobs)

    def script(self, agreement_id: str, steps: list[str]) -> None:
        self.state.set_script(agreement_id, steps)

    def unsigns(self, agreement_id: str) -> int:
        return self.state.stats.counts(agreement_id).unsigns

    def requests(self, agreement_id: str) -> int:
        return self.state.stats.counts(agreement_id).requests


@pytest.fixture
def gateway_factory() -> Iterator[Any]:
    made: list[Gateway] = []

    def make(agreements: list[Agreement], *, port: int = 0, start: bool = True) -> Gateway:
        gw = Gateway(agreements, port=port)
        made.append(gw)
        return gw.start() if start else gw

    yield make
    for gw in made:
        gw.stop()
