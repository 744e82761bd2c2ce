"""Flower's event capture, riding out a broker outage.

Flower's own capture loop logs an error per failed attempt and doubles its delay without a cap,
so after a one-minute Redis restart it may wait minutes more before it sees events again. This
loop backs off up to a few seconds, says "Redis unavailable since …, retrying" once in Flower's
log and "available again" at the first event after it.
"""

from __future__ import annotations

import _thread
import logging
import time
from typing import Any

from unsign_worker.store.outage import Outage

log = logging.getLogger(__name__)


def capture_forever(events: Any, outage: Outage) -> None:
    """The body of Flower's events thread (``flower.events.Events``) for our Flower."""
    from celery.events import EventReceiver

    def on_event(event: Any) -> None:
        outage.recovered()  # heartbeats arrive every few seconds: the first one says it
        events.on_event(event)  # looked up each time: Flower's handler, with our masking

    while True:
        try:
            with events.capp.connection() as conn:
                receiver = EventReceiver(conn, handlers={"*": on_event}, app=events.capp)
                receiver.capture(limit=None, timeout=None, wakeup=True)
        except (KeyboardInterrupt, SystemExit):
            _thread.interrupt_main()
            return
        except Exception as exc:  # the broker away, or anything else: wait and capture again
            time.sleep(outage.failed(exc))


def ride_out_outages(flower: Any) -> None:
    """Make ``flower`` (a ``flower.app.Flower``, not started) capture events through outages."""
    events = flower.events
    outage = Outage("Redis (Flower's event capture)", log.warning)
    events.run = lambda: capture_forever(events, outage)
