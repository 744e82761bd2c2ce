"""Celery settings of unsign-worker.

``config_for(settings)`` is the single source; ``unsign_worker.worker.app`` builds the app from it
and the settings object, and this module also exposes the same values at module level (read from
the environment) for ``celery -A ... --config celeryconfig`` users. Every value has a reason:

- JSON only, never pickle: a pickled message put on the queue by an attacker is refused.
- ``task_acks_late`` + ``task_reject_on_worker_lost``: a job whose worker dies mid-task is
  redelivered, not lost. Redelivery alone is not trusted (a second crash acks it): the job state
  in Redis and the lease sweeper re-publish any job whose lease expired without an outcome.
- ``visibility_timeout`` longer than the longest retry countdown plus the lease, so a delayed
  (countdown) message is never redelivered while it waits; ``Settings`` refuses otherwise.
- prefetch: the jobs are short and I/O-bound, so a small multiplier keeps the pool busy without
  hoarding messages another worker could take; ``worker_eta_task_limit`` bounds how many delayed
  retries one worker holds in memory.
- task events on (Flower), named queues, and every broker key under the project's key prefix.
- a ``rediss://`` broker always verifies the server's certificate (``broker_use_ssl`` with
  ``CERT_REQUIRED``): kombu alone would fall back to no verification.
"""

from __future__ import annotations

from typing import Any

from unsign_worker.settings import Settings
from unsign_worker.store.broker import amqp_config, is_amqp, redis_tls_options
from unsign_worker.store.keys import HOOK_QUEUE, QUEUE
from unsign_worker.store.sentinel import is_sentinel, kombu_broker

#: Messages a worker prefetches per pool slot.
PREFETCH_MULTIPLIER = 4
#: Delayed (countdown) tasks one worker holds at most.
ETA_TASK_LIMIT = 10_000
#: Connections a worker process may open to the Redis broker (acks from every pool slot).
BROKER_MAX_CONNECTIONS = 1000
#: Seconds between the broker's sweeps for unacknowledged messages to restore.
UNACKED_RESTORE_INTERVAL_SECONDS = 10


def config_for(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for ``settings``."""
    visibility = int(settings.visibility_timeout_seconds)
    transport = {
        "visibility_timeout": visibility,
        "global_keyprefix": settings.key_prefix,
        "unacked_restore_interval": min(UNACKED_RESTORE_INTERVAL_SECONDS, max(1, visibility // 4)),
        "unacked_restore_throttle": 1,
        # every pool slot may acknowledge at once (gevent/threads): kombu's default of 10
        # connections makes acknowledgements fail under load
        "max_connections": BROKER_MAX_CONNECTIONS,
        "socket_timeout": 30,
        "socket_connect_timeout": 10,
        "health_check_interval": 25,
    }
    queue_types: dict[str, Any] = {}
    if is_amqp(settings.broker_url):
        queue_types = amqp_config()
        transport = queue_types.pop("broker_transport_options")
    tls = redis_tls_options(settings.broker_url)
    if tls is not None:  # rediss://: verify the certificate (kombu would not by default)
        queue_types["broker_use_ssl"] = tls
    broker_url = settings.broker_url
    if is_sentinel(broker_url):  # kombu's sentinel:// transport, master_name, TLS
        broker_url, sentinel_options, sentinel_tls = kombu_broker(broker_url)
        transport.update(sentinel_options)
        if sentinel_tls is not None:
            queue_types["broker_use_ssl"] = sentinel_tls
    return {
        **queue_types,
        "broker_url": broker_url,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        # a broker outage of any length is waited out (Celery's default gives up after 100
        # attempts, about 45 minutes, and the worker stops consuming)
        "broker_connection_max_retries": None,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": PREFETCH_MULTIPLIER,
        "worker_eta_task_limit": ETA_TASK_LIMIT,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "task_default_queue": QUEUE,
        "task_create_missing_queues": True,
        "task_routes": {
            "unsign_worker.unsign": {"queue": QUEUE},
            "unsign_worker.unsign_batch": {"queue": QUEUE},
            "unsign_worker.run_hook": {"queue": HOOK_QUEUE},
        },
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_soft_shutdown_timeout": 10.0,
        "worker_enable_soft_shutdown_on_idle": True,
        "enable_utc": True,
    }


def _from_env() -> dict[str, Any]:
    try:
        return config_for(Settings.from_env())
    except Exception:  # a bad environment is reported by the CLI, not at import
        return {}


globals().update(_from_env())
