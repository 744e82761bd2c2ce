"""A worker's background loops (the sweeper, the inbox): one daemon thread each, that keeps
going through Redis restarts and blips and stops when asked."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class LoopThread(threading.Thread):
    """Calls ``step`` until stopped, waiting ``pause`` seconds after each call (0: none, for a
    step that blocks by itself) and ``retry`` seconds after a failed one."""

    def __init__(self, name: str, step: Callable[[], object], *, pause: float, retry: float,
                 what: str) -> None:
        super().__init__(name=name, daemon=True)
        self._step = step
        self._pause = pause
        self._retry = retry
        self._what = what
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            wait = self._pause
            try:
                self._step()
            except Exception:  # keep going through Redis restarts and broker blips
                log.exception("%s failed; retrying in %.0fs", self._what, self._retry)
                wait = self._retry
            if wait and self._stop_event.wait(wait):
                return

    def stop(self) -> None:
        self._stop_event.set()
