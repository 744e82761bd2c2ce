"""Guards around four library behaviours that hurt a long-running worker.

1. redis-py looks its own version up in the installed packages' metadata (a directory scan of
   a few milliseconds) every time it opens a connection; a worker opening one per pool slot pays
   that at full load. The version cannot change in a running process: it is cached.

2. Kombu's Redis channel builds a new ``redis.Redis`` object (about 200 response callbacks
   copied into a dictionary) for every command it sends outside its poller: every task event
   published, every delivery recorded in the unacknowledged index, every acknowledgement;
   about 0.36 ms of CPU per single-job message. Such a client is only a view on the channel's
   connection pool, so one is kept per channel and pool and reused; when the channel drops its
   pool (broker lost, fork), the next command builds a new client on the new pool.

3. Kombu, on losing the broker, can stop a worker for good:

When the Redis broker goes away (restart, failover), the consumer releases its connection while
tasks are still finishing in the pool. Whatever then touches the broker through the released
channel (restoring the unacknowledged messages at once, acknowledging a task that just ended)
fails inside kombu with ``AttributeError`` (the channel's connection, or its client, is
``None``; or, under an acknowledgement, the connection's reader), which Celery
treats as an unrecoverable error: the worker shuts down instead of reconnecting.

The guard turns that into the connection error it really is, which kombu and Celery already
handle: an acknowledgement that cannot be sent is logged, the message stays in the broker's
``unacked`` index and is restored after the visibility timeout (the job's claim then drops the
redundant copy), and the worker keeps reconnecting.

4. A Redis that refuses writes for now (``NOREPLICAS`` under ``min-replicas-to-write``,
``READONLY`` from a demoted primary, ``MASTERDOWN``) answers with a command error, which kombu
counts among its channel errors and Celery's consumer treats as unrecoverable: the worker
logged "Unrecoverable error" and both its processes exited for good.
:mod:`unsign_worker.store.refusals` makes them connection errors: the consumer reconnects (a
Sentinel URL rediscovers the primary) and waits until writes are taken again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from unsign_worker.store import refusals

log = logging.getLogger(__name__)
_applied = False


def apply() -> None:
    """Install the guard once per process."""
    global _applied
    if _applied:
        return
    import contextlib
    import functools

    import redis
    import redis.utils
    from kombu.transport import redis as kombu_redis

    redis.utils.get_lib_version = functools.cache(redis.utils.get_lib_version)
    refusals.install()

    original_connparams = kombu_redis.Channel._connparams
    original_create_client = kombu_redis.Channel._create_client
    original_restore = kombu_redis.QoS.restore_unacked

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if self.connection is None or getattr(self.connection, "client", None) is None:
            raise redis.exceptions.ConnectionError("broker channel already closed")
        return original_connparams(self, asynchronous=asynchronous)

    @contextlib.contextmanager
    def conn_or_acquire(self: Any, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool  # builds the pool if the channel dropped it (the guard above applies)
        cached = self.__dict__.get("_unsign_client")
        if cached is None or cached.connection_pool is not pool:
            cached = original_create_client(self)
            self.__dict__["_unsign_client"] = cached
        yield cached

    def restore_unacked(self: Any, client: Any = None) -> Any:
        try:
            return original_restore(self, client)
        except kombu_redis.Transport.connection_errors as exc:
            log.warning("broker connection lost before unacknowledged messages could be "
                        "restored (%s); they will be restored after the visibility timeout",
                        type(exc).__name__)
            return None

    original_ack = kombu_redis.QoS.ack

    def ack(self: Any, delivery_tag: Any) -> Any:
        try:
            return original_ack(self, delivery_tag)
        except AttributeError as exc:  # its connection was torn down under it (guard 3)
            raise redis.exceptions.ConnectionError("broker connection closed during an "
                                                   "acknowledgement") from exc

    kombu_redis.QoS.ack = ack
    kombu_redis.Channel._connparams = _connparams
    kombu_redis.Channel.conn_or_acquire = conn_or_acquire
    kombu_redis.QoS.restore_unacked = restore_unacked
    _applied = True
