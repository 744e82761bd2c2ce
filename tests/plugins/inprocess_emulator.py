"""The gateway emulator served from a thread of the test process, on a free loopback port."""

from __future__ import annotations

import asyncio
import threading

from unsign_worker.emulator.agreements import Agreement
from unsign_worker.emulator.config import build_config
from unsign_worker.emulator.server import start_server
from unsign_worker.emulator.state import EmulatorState


class Emulator:
    """The gateway emulator served from a thread of the test process."""

    def __init__(self, agreements: list[Agreement], *, partner: str, key: str) -> None:
        self.state = EmulatorState(build_config(partner=partner, key=key), agreements)
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.runner, self.port = self.loop.run_until_complete(
                start_server(self.state, host="127.0.0.1", port=0))
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(30), "emulator did not start"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/gateway.do"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
