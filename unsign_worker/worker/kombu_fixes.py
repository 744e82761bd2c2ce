"""Guards around two library behaviours that hurt a long-running worker.

1. redis-py looks its own version up in the installed packages' metadata (a directory scan of
   a few milliseconds) every time it opens a connection; a worker opening one per pool slot pays
   that at full load. The version cannot change in a running process: it is cached.

2. Kombu, on losing the broker, can stop a worker for good:

When the Redis broker goes away (restart, failover), the consumer releases its connection while
tasks are still finishing in the pool. Whatever then touches the broker through the released
channel (restoring the unacknowledged messages at once, acknowledging a task that just ended)
fails inside kombu with ``AttributeError`` (the channel's connection, or its client, is
``None``), which Celery
treats as an unrecoverable error: the worker shuts down instead of reconnecting.

The guard turns that into the connection error it really is, which kombu and Celery already
handle: an acknowledgement that cannot be sent is logged, the message stays in the broker's
``unacked`` index and is restored after the visibility timeout (the job's claim then drops the
redundant copy), and the worker keeps reconnecting.
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
    import functools

    import redis
    import redis.utils
    from kombu.transport import redis as kombu_redis

    redis.utils.get_lib_version = functools.cache(redis.utils.get_lib_version)

    original_connparams = kombu_redis.Channel._connparams
    original_restore = kombu_redis.QoS.restore_unacked

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if self.connection is None or getattr(self.connection, "client", None) is None:
            raise redis.exceptions.ConnectionError("broker channel already closed")
        return original_connparams(self, asynchronous=asynchronous)

    def restore_unacked(self: Any, client: Any = None) -> Any:
        try:
            return original_restore(self, client)
        except kombu_redis.Transport.connection_errors as exc:
            log.warning("broker connection lost before unacknowledged messages could be "
                        "restored (%s); they will be restored after the visibility timeout",
                        type(exc).__name__)
            return None

    kombu_redis.Channel._connparams = _connparams
    kombu_redis.QoS.restore_unacked = restore_unacked
    _applied = True
