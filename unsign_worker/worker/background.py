"""A worker's background loops (the sweeper, the inbox): one daemon thread each, that keeps
going through Redis restarts and blips and stops when asked.

An outage (Redis or the broker away) is announced once, in one log line, waited out with a
capped backoff, and its end announced once (:mod:`unsign_worker.store.outage`); any other failure of
a step is a bug and is logged with its traceback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from unsign_worker.store.outage import OUTAGE_ERRORS, Outage

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
        self.outage = Outage("Redis", lambda text: log.warning("%s: %s", what, text))

    def run(self) -> None:
        while not self._stop_event.is_set():
            wait = self._pause
            try:
                self._step()
            except OUTAGE_ERRORS as exc:  # Redis restarting, failing over, unreachable
                wait = self.outage.failed(exc)
            except Exception:  # a bug: keep going, with its traceback in the log
                log.exception("%s failed; retrying in %.0fs", self._what, self._retry)
                wait = self._retry
            else:
                self.outage.recovered()
            if wait and self._stop_event.wait(wait):
                return

    def stop(self) -> None:
        self._stop_event.set()
