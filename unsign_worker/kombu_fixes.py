"""A guard around one kombu behaviour that would otherwise stop a worker for good.

When the Redis broker goes away (restart, failover), the consumer releases its connection and
kombu tries to put the unacknowledged messages back at once (``QoS.restore_unacked``). With
the connection already gone that raises ``AttributeError`` inside kombu, which Celery treats as
an unrecoverable error: the worker shuts down instead of reconnecting. Skipping the immediate
restore is safe: the messages stay in the broker's ``unacked`` index and are restored by the
visibility-timeout sweep once Redis is back (and the job leases are re-published by our own
sweeper in any case), so the worker keeps reconnecting instead of dying.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
_applied = False


def apply() -> None:
    """Install the guard once per process."""
    global _applied
    if _applied:
        return
    from kombu.transport import redis as kombu_redis

    original = kombu_redis.QoS.restore_unacked

    def restore_unacked(self: Any, client: Any = None) -> Any:
        try:
            return original(self, client)
        except (AttributeError, *kombu_redis.Transport.connection_errors) as exc:
            log.warning("broker connection lost before unacknowledged messages could be "
                        "restored (%s); they will be restored after the visibility timeout",
                        type(exc).__name__)
            return None

    kombu_redis.QoS.restore_unacked = restore_unacked
    _applied = True
