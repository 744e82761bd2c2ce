"""A worker that dies (SIGKILL, nothing cleaned up) at a chosen point of taking the entries of
a producer's stream, for the tests that a crash there never makes a second job.

A worker process imports this module as its success hook
(``UNSIGN_SUCCESS_HOOK=tests.plugins.crash_points:no_hook``; the hook itself does nothing).
With ``UNSIGN_TEST_CRASH_AT`` set, the module wraps one step of the inbox so that the process
kills itself there, the first time that step handles several entries of producer
``UNSIGN_TEST_CRASH_PRODUCER`` (one read's batch):

- ``bound``: right after the read's entries were bound to their new job ids;
- ``records``: just before their job records are written (their references already bound);
- ``recorded``: right after their records were written, before their jobs are handed over;
- ``acknowledging``: after their jobs were handed to the pool, before the entries are
  acknowledged.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

CRASH_POINTS = ("bound", "records", "recorded", "acknowledging")
#: A step counts as a batch from this many entries on (a lone entry taken again is not one).
BATCH = 2


def no_hook(event: dict[str, Any]) -> None:
    """The success hook: nothing to do."""


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _install(point: str, target: str) -> None:
    from unsign_worker.producers.producer import Producer
    from unsign_worker.worker import entry_taker, inbox

    # each step wrapped below must still exist under its name: fail loudly if it moved
    assert hasattr(Producer, "bind_entries") and hasattr(Producer, "write_records")
    assert hasattr(entry_taker, "record_new") and hasattr(inbox.Inbox, "_ack")

    if point == "bound":
        bind_entries = Producer.bind_entries

        def bound(self: Any, producer: str, entry_ids: Any) -> Any:
            result = bind_entries(self, producer, entry_ids)
            if producer == target and len(entry_ids) >= BATCH:
                _die()
            return result

        Producer.bind_entries = bound  # type: ignore[method-assign]
    elif point == "records":
        write_records = Producer.write_records

        def records(self: Any, jobs: Any, **kwargs: Any) -> Any:
            if sum(1 for job in jobs if job.producer == target) >= BATCH:
                _die()
            return write_records(self, jobs, **kwargs)

        Producer.write_records = records  # type: ignore[method-assign]
    elif point == "recorded":
        record_new: Callable[..., Any] = entry_taker.record_new

        def recorded(producer: Any, jobs: Any) -> Any:
            result = record_new(producer, jobs)
            if sum(1 for job in result.values() if job.producer == target) >= BATCH:
                _die()
            return result

        entry_taker.record_new = recorded  # type: ignore[assignment]
    elif point == "acknowledging":
        ack = inbox.Inbox._ack
        stream = f"{os.environ.get('UNSIGN_KEY_PREFIX', 'unsign:')}inbox:{target}"

        def acknowledging(self: Any, read: Any) -> Any:
            if len(read.get(stream, ())) >= BATCH:
                _die()
            return ack(self, read)

        inbox.Inbox._ack = acknowledging  # type: ignore[method-assign]
    else:
        raise ValueError(f"UNSIGN_TEST_CRASH_AT: {point!r} is not one of {CRASH_POINTS}")


if os.environ.get("UNSIGN_TEST_CRASH_AT"):
    _install(os.environ["UNSIGN_TEST_CRASH_AT"], os.environ["UNSIGN_TEST_CRASH_PRODUCER"])
