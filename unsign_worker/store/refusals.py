"""A Redis that refuses writes for now is an outage, not a wrong command.

redis-py raises these answers as ``ResponseError`` (a command error), which kombu counts among a
channel's errors and Celery's consumer then treats as unrecoverable (the worker logs "Unrecoverable
error" and exits for good), while every loop of this project that waits out an outage
(:data:`unsign_worker.store.outage.OUTAGE_ERRORS`) lets them through:

- ``NOREPLICAS``: the primary has fewer than ``min-replicas-to-write`` replicas in reach;
- ``READONLY``: the server is a replica now (a demoted primary after a failover);
- ``UNBLOCKED``: the same demotion, told to a client blocked in ``BRPOP`` (the broker's
  consumer, which would otherwise wait forever for an answer to a pop it believes in flight);
- ``MASTERDOWN``: a replica lost its primary and serves no stale data;
- ``LOADING``: the server is loading its data set (already a connection error in redis-py).

:func:`install` maps them to error classes that are both: still a ``ResponseError`` (redis-py
raises it, a pipeline reports it), and a ``ConnectionError``, so kombu reconnects (through the
Sentinels: the new connection goes to the current primary), redis-py's own retry tries again,
and the loops back off and carry on.
"""

from __future__ import annotations

import redis
from redis._parsers.base import BaseParser


class NoReplicasError(redis.exceptions.ResponseError, redis.exceptions.ConnectionError):
    """``NOREPLICAS``: the primary refuses writes until enough replicas are in reach."""


class DemotedError(redis.exceptions.ReadOnlyError, redis.exceptions.ConnectionError):
    """``READONLY``: the server answering is a replica (after a failover, the old primary)."""


class UnblockedError(redis.exceptions.ResponseError, redis.exceptions.ConnectionError):
    """``UNBLOCKED``: a blocking command ended because the primary became a replica."""


class PrimaryDownError(redis.exceptions.MasterDownError, redis.exceptions.ConnectionError):
    """``MASTERDOWN``: a replica whose primary is gone."""


REFUSALS: dict[str, type[redis.exceptions.RedisError]] = {
    "NOREPLICAS": NoReplicasError,
    "READONLY": DemotedError,
    "UNBLOCKED": UnblockedError,
    "MASTERDOWN": PrimaryDownError,
    "LOADING": redis.exceptions.BusyLoadingError,
}


def install() -> None:
    """Map the refusals above in redis-py's error table (idempotent, once per process)."""
    BaseParser.EXCEPTION_CLASSES.update(REFUSALS)
