"""Which Celery remote-control commands a worker obeys.

Celery's remote control reaches every worker through the broker: whoever can publish on the
broker's control channel may ``shutdown`` a worker or ``cancel_consumer('unsign')`` (the worker
stays up, consuming nothing). The product needs only what Flower reads (``stats``,
``active_queues``, ``registered``, ``scheduled``, ``active``, ``reserved``, ``revoked``, ``conf``),
``ping``, and ``enable_events`` (Flower turns events on for workers started after it); that is
the default, ``UNSIGN_REMOTE_CONTROL=inspect``. Every other command is answered with an error
and logged. ``UNSIGN_REMOTE_CONTROL=full`` keeps all of Celery's commands (for Flower
``--control``); the Redis ACL roles (:mod:`unsign_worker.store.acl`) keep producers off the control
channel either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

MODES = ("inspect", "full")
#: The commands a worker obeys in ``inspect`` mode: read-only, or (``enable_events``,
#: ``heartbeat``, ``hello``, ``clock``) what Flower and the workers themselves send.
INSPECT_COMMANDS = frozenset({
    "ping", "stats", "active_queues", "registered", "scheduled", "active", "reserved",
    "revoked", "conf", "report", "query_task", "clock", "hello", "heartbeat", "enable_events",
})


def _refuse(name: str) -> Callable[..., dict[str, str]]:
    def refused(state: Any, **_: Any) -> dict[str, str]:
        log.warning("refused the remote-control command %r (UNSIGN_REMOTE_CONTROL=inspect)",
                    name)
        return {"error": f"remote-control command {name!r} is turned off on this worker "
                         "(UNSIGN_REMOTE_CONTROL=inspect)"}
    return refused


def restrict(mode: str) -> list[str]:
    """Make this process's worker obey only the commands ``mode`` allows; returns the names
    turned off. Call in the worker process before its consumer starts."""
    if mode == "full":
        return []
    from celery.worker.control import Panel

    off = sorted(name for name in Panel.data if name not in INSPECT_COMMANDS)
    for name in off:
        Panel.data[name] = _refuse(name)
    return off
